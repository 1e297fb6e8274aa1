/** The solc release the contracts are built with (pinned exactly in package.json). */
export const SOLC_VERSION = '0.8.30'
/** The EVM the bytecode targets: cancun (transient storage and MCOPY available; anvil runs it). */
export const SOLC_EVM_VERSION = 'cancun'
export const SOLC_OPTIMIZER_RUNS = 10_000

/** Vouchers per `redeem` transaction when settling. */
export const DEFAULT_BATCH_SIZE = 50
/** Upper bound on a batch: keeps a transaction well inside a block's gas limit. */
export const MAX_BATCH_SIZE = 200
/** How long a JSON-RPC call may take before it counts as failed (retryable). */
export const DEFAULT_RPC_TIMEOUT_MS = 30_000
/** How long to wait for a sent transaction's receipt. */
export const DEFAULT_RECEIPT_TIMEOUT_MS = 120_000
/** Retrying a failed RPC call while settling: attempts in all, and the first backoff. */
export const DEFAULT_RETRY = { attempts: 5, baseDelayMs: 500 } as const
/** How long the dev chain may take to answer its first RPC call. */
export const DEV_CHAIN_START_TIMEOUT_MS = 20_000
/** How many funded keys the dev chain starts with. */
export const DEV_CHAIN_ACCOUNTS = 10

/** Per-entry result codes of `redeem`, by the number the contract returns. */
export const REDEEM_CODES = ['PAID', 'CAPPED', 'REPLAY', 'BAD_SIGNATURE', 'WRONG_SIGNER', 'NO_BALANCE'] as const
/** A contract code, or REVERTED when the whole transaction reverted. */
export type RedeemCode = typeof REDEEM_CODES[number] | 'REVERTED'
