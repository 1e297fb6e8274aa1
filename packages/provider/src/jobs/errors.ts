/**
 * Errors of the job side. Matched by `name`, detailed by `code`; never by message text.
 */

import { CodedError } from '@gpumesh/protocol'

export const VOUCHER_REFUSAL_CODES = [
  'WRONG_SIGNER',
  'WRONG_LEASE',
  'WRONG_PROVIDER',
  'WRONG_TOKEN',
  'WRONG_DOMAIN',
  'SEQUENCE_NOT_HIGHER',
  'AMOUNT_NOT_HIGHER',
  'AMOUNT_ABOVE_REPORTED',
  'BAD_SIGNATURE'
] as const
export type VoucherRefusalCode = typeof VOUCHER_REFUSAL_CODES[number]

/** A voucher the provider will not accept. Not retryable: the renter must send a different one. */
export class VoucherRefusedError extends CodedError<VoucherRefusalCode> {
  static override readonly name = 'VoucherRefusedError'
  readonly retryable = false
}

export const BUNDLE_ERROR_CODES = [
  'COMPRESSED_TOO_LARGE',
  'UNCOMPRESSED_TOO_LARGE',
  'ABSOLUTE_PATH',
  'PATH_TRAVERSAL',
  'LINK_ESCAPES',
  'UNSUPPORTED_ENTRY',
  'DUPLICATE_ENTRY',
  'CORRUPT',
  'ABORTED'
] as const
export type BundleErrorCode = typeof BUNDLE_ERROR_CODES[number]

/** A job bundle that cannot be extracted safely. `entry` names the offending archive path. */
export class BundleError extends CodedError<BundleErrorCode> {
  static override readonly name = 'BundleError'
  readonly entry: string | null

  constructor (code: BundleErrorCode, message: string, entry: string | null = null, options?: ErrorOptions) {
    super(code, message, options)
    this.entry = entry
  }
}

export const JOB_ERROR_CODES = [
  'RUNNER_DISABLED',
  'SPAWN_FAILED',
  /** The runner's own set-up failed before the job ran (the engine, its GPU runtime): the provider's fault. */
  'RUNNER_FAILED',
  /** The job's image is not present, not allowed, or could not be pulled within the owner's limits. */
  'IMAGE_UNAVAILABLE',
  'LEASE_NOT_FOUND',
  'LEASE_NOT_STARTABLE',
  /** The renter cancelled a lease that has ended, or whose job is being set up. */
  'LEASE_NOT_CANCELLABLE',
  'JOB_EXISTS',
  'JOB_NOT_FOUND',
  'BUNDLE_HASH_MISMATCH',
  'BAD_SPEC',
  'STOPPED'
] as const
export type JobErrorCode = typeof JOB_ERROR_CODES[number]

export class JobError extends CodedError<JobErrorCode> {
  static override readonly name = 'JobError'
}
