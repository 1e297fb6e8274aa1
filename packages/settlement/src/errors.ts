/**
 * Every error the settlement package throws. Callers match on `name` or `code`, never on message
 * text. `retryable` says whether doing the same again may succeed (the node timed out, the network
 * dropped, the nonce moved under us) or not (a revert, a bad key, a wrong address).
 */

import { CodedError } from '@gpumesh/protocol'

export type ChainErrorCode =
  | 'NETWORK' // the node could not be reached or did not answer in time
  | 'REVERTED' // the transaction or call reverted
  | 'INSUFFICIENT_FUNDS' // the sending key cannot pay for gas (or the value)
  | 'NONCE' // the nonce was already used or is too far ahead
  | 'TIMEOUT' // no receipt in time (not retried: the transaction may still be mined; reconcile later)
  | 'ABORTED' // the caller's signal fired
  | 'BAD_INPUT' // an argument the chain would never accept (bad address, negative amount)
  | 'NO_KEY' // a transaction was asked of a client without a private key
  | 'UNKNOWN'

export interface ChainErrorOptions {
  cause?: unknown
  /** The contract's custom error name, for reverts that carry one. */
  revertReason?: string | null
}

export class ChainError extends CodedError<ChainErrorCode> {
  override name = 'ChainError'
  readonly retryable: boolean
  readonly revertReason: string | null

  constructor (message: string, code: ChainErrorCode, retryable: boolean, options: ChainErrorOptions = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause })
    this.retryable = retryable
    this.revertReason = options.revertReason ?? null
  }
}

/** The contracts could not be compiled (or the wrong compiler is installed). */
export class ContractBuildError extends Error {
  override name = 'ContractBuildError'
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
  }
}

/** The dev chain (anvil) could not start. */
export class DevChainError extends Error {
  override name = 'DevChainError'
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
  }
}
