/**
 * @gpumesh/settlement — the escrow contract (Solidity, compiled from source with the pinned solc),
 * its deployment, a local dev chain (anvil), the escrow client, and the durable on-chain redemption
 * queue that pays providers their vouchers in batches.
 */
export { ARTIFACTS_FILE, CONTRACTS_DIR, loadContracts } from './artifacts.js'
export type { ContractArtifact, ContractArtifacts } from './artifacts.js'
export { anvilBinaryPath, startDevChain } from './dev-chain.js'
export type { DevChain, DevChainOptions } from './dev-chain.js'
export {
  EscrowClient, compactSignature, deployEscrow, deployTestToken, encodeRedeemGroups, mintTestToken, voucherKey
} from './escrow-client.js'
export type {
  EscrowAccount, EscrowClientOptions, RedeemEntryResult, RedeemOptions, RedeemResult, TxResult, VoucherIdentity
} from './escrow-client.js'
export { ChainError, ContractBuildError, DevChainError } from './errors.js'
export type { ChainErrorCode, ChainErrorOptions } from './errors.js'
export * from './constants.js'
export { SILENT_LOGGER } from './types.js'
export type { SettlementLogger } from './types.js'
export { settleOnchain, unredeemedAmount } from './settle-onchain.js'
export type {
  ReconciledBatch, RetryOptions, SettleOnchainOptions, SettleProgress, SettleReport, SettledBatch, SettledEntry, SkippedLease
} from './settle-onchain.js'
export { BATCH_FORMAT, BATCH_VERSION, buildSettlementBatch, verifySettlementBatch } from './offchain-batch.js'
export type {
  BatchEntry, BatchEntryInput, BatchSignedValue, BatchTotal, BatchVerification, EntryVerdict, SettlementBatch
} from './offchain-batch.js'
