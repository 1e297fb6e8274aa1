import { CodedError, type LeaseRejectCode, type NoMatchExplanation } from '@gpumesh/protocol'

/**
 * Errors of the renter SDK. Match them by `name` and `code`, never by message text; each message is a
 * sentence a renter can act on.
 */

/** A job file that cannot be used: which key, on which line, and what was expected. */
export class JobFileError extends Error {
  static override readonly name = 'JobFileError'
  override readonly name = 'JobFileError'
  readonly code = 'JOB_FILE_INVALID'
  /** Dotted key path, e.g. `gpus.count`; empty for the document as a whole. */
  readonly key: string
  /** 1-based line of the key in the file, or null when it has none (a missing key: the parent's line). */
  readonly line: number | null
  readonly file: string

  constructor (file: string, key: string, line: number | null, problem: string, options?: ErrorOptions) {
    const where = `${file}${line != null ? `:${line}` : ''}`
    super(`${where}: ${key !== '' ? `${key}: ` : ''}${problem}`, options)
    this.file = file
    this.key = key
    this.line = line
  }
}

export type ArchiveErrorCode = 'OUTSIDE_JOB_DIR' | 'NOT_FOUND' | 'UNSUPPORTED_ENTRY' | 'EMPTY' | 'IO'

/**
 * The job bundle could not be built, or the artifacts could not be unpacked (both tar.gz archives on
 * the renter's disk; the provider's `BundleError` is its refusal of an uploaded bundle).
 */
export class ArchiveError extends CodedError<ArchiveErrorCode> {
  static override readonly name = 'ArchiveError'
  readonly path: string | null

  constructor (code: ArchiveErrorCode, message: string, path: string | null = null, options?: ErrorOptions) {
    super(code, message, options)
    this.path = path
  }
}

export type OrderErrorCode =
  /** The matcher answered no-match: `explanation` says why. */
  | 'NO_MATCH'
  /** The matcher could not be reached or did not answer in time. */
  | 'MATCHER_UNREACHABLE'
  /** The matcher refused the order itself (`remoteCode`: BAD_SIGNATURE, EXPIRED, NOT_RENTER, …). */
  | 'MATCHER_REFUSED'
  /** A provider proposed to directly could not be reached. */
  | 'PROVIDER_UNREACHABLE'
  /** A provider proposed to directly declined (`rejectCode`). */
  | 'PROVIDER_REJECTED'
  /** Terms came back that are not signed by the provider or do not match the order. */
  | 'BAD_TERMS'
  | 'ABORTED'

/** Getting a lease failed. */
export class OrderError extends CodedError<OrderErrorCode> {
  static override readonly name = 'OrderError'
  readonly explanation: NoMatchExplanation | null
  /** The matcher's reason code when it refused the request (`MATCHER_REFUSED`), or a net code. */
  readonly remoteCode: string | null
  /** The provider's reason code (`PROVIDER_REJECTED`). */
  readonly rejectCode: LeaseRejectCode | null
  readonly retryable: boolean

  constructor (code: OrderErrorCode, message: string, options: ErrorOptions & {
    explanation?: NoMatchExplanation, remoteCode?: string, rejectCode?: LeaseRejectCode, retryable?: boolean
  } = {}) {
    super(code, message, { cause: options.cause })
    this.explanation = options.explanation ?? null
    this.remoteCode = options.remoteCode ?? null
    this.rejectCode = options.rejectCode ?? null
    this.retryable = options.retryable ?? false
  }
}

export type JobRunErrorCode =
  /** The provider stopped answering mid-job: `paid` and `lastCheckpoint` say where things stand. */
  | 'PROVIDER_GONE'
  /** The provider refused the job upload or the job itself. */
  | 'JOB_REFUSED'
  /** Artifacts could not be fetched or unpacked. */
  | 'ARTIFACTS_FAILED'

/** Running a leased job failed after the lease was granted. */
export class JobRunError extends CodedError<JobRunErrorCode> {
  static override readonly name = 'JobRunError'
  /** Base units the renter signed vouchers for. */
  readonly paid: bigint
  /** The note of the job's last `checkpoint` event, or null. */
  readonly lastCheckpoint: string | null
  readonly leaseId: string

  constructor (code: JobRunErrorCode, message: string, fields: { leaseId: string, paid: bigint, lastCheckpoint: string | null }, options?: ErrorOptions) {
    super(code, message, options)
    this.leaseId = fields.leaseId
    this.paid = fields.paid
    this.lastCheckpoint = fields.lastCheckpoint
  }
}

/** A local lease record is missing or unreadable. */
export class LeaseRecordError extends CodedError<'NOT_FOUND' | 'AMBIGUOUS' | 'CORRUPT'> {
  static override readonly name = 'LeaseRecordError'
}

export type BookReadErrorCode =
  /** The matcher address given is not a multiaddr. */
  | 'BAD_ADDRESS'
  /** The matcher could not be reached or did not answer in time. */
  | 'MATCHER_UNREACHABLE'
  /** The matcher's answer failed the size cap or the schema. */
  | 'BAD_PAGE'

/** Reading a matcher's book failed. */
export class BookReadError extends CodedError<BookReadErrorCode> {
  static override readonly name = 'BookReadError'
}
