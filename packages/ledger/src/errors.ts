/**
 * Every error the ledger throws. Callers match on `name` or `code`, never on message text.
 * `retryable` says whether running the same call again may succeed (only a busy database).
 */

import { CodedError } from '@gpumesh/protocol'

export type LedgerErrorCode =
  | 'LEDGER_ERROR'
  | 'BUSY'
  | 'CLOSED'
  | 'VERSION'
  | 'NOT_FOUND'
  | 'NO_CAPACITY'
  | 'REPLAY'
  | 'INVALID_TRANSITION'
  | 'INVALID_INPUT'
  | 'USAGE_PERIOD_ORDER'
  | 'VOUCHER_ORDER'

export interface LedgerErrorOptions {
  cause?: unknown
  /** The SQLite extended result code, when the error came from SQLite. */
  sqliteCode?: string
}

/** Any ledger failure. Thrown as is for SQLite errors that have no more specific class. */
export class LedgerError extends CodedError<LedgerErrorCode> {
  override name = 'LedgerError'
  readonly retryable: boolean
  readonly sqliteCode: string | null

  constructor (message: string, options: LedgerErrorOptions = {}, code: LedgerErrorCode = 'LEDGER_ERROR', retryable = false) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause })
    this.retryable = retryable
    this.sqliteCode = options.sqliteCode ?? null
  }
}

/** Another connection held the write lock past the busy timeout. Retrying may succeed. */
export class LedgerBusyError extends LedgerError {
  override name = 'LedgerBusyError'
  constructor (message: string, options: LedgerErrorOptions = {}) {
    super(message, options, 'BUSY', true)
  }
}

/** The ledger was used before `open()` or after `close()`. */
export class LedgerClosedError extends LedgerError {
  override name = 'LedgerClosedError'
  constructor () {
    super('the ledger is not open', {}, 'CLOSED')
  }
}

/** The database file was written by a newer gpumesh than this one. */
export class LedgerVersionError extends LedgerError {
  override name = 'LedgerVersionError'
  readonly found: number
  readonly supported: number
  constructor (path: string, found: number, supported: number) {
    super(
      `The ledger ${path} has schema version ${found} but this gpumesh knows only up to ${supported}: ` +
      'it was written by a newer gpumesh. Upgrade gpumesh to open it; the file was left untouched.',
      {},
      'VERSION'
    )
    this.found = found
    this.supported = supported
  }
}

export type NotFoundKind = 'lease' | 'gpu' | 'settlement'

/** No row of that kind with that id. */
export class NotFoundError extends LedgerError {
  override name = 'NotFoundError'
  readonly kind: NotFoundKind
  readonly id: string
  constructor (kind: NotFoundKind, id: string) {
    super(`no ${kind} ${id}`, {}, 'NOT_FOUND')
    this.kind = kind
    this.id = id
  }
}

/** Fewer eligible GPUs are free than the lease asks for. Nothing was written. */
export class NoCapacityError extends LedgerError {
  override name = 'NoCapacityError'
  readonly requested: number
  readonly available: number
  constructor (requested: number, available: number) {
    super(`${requested} GPU(s) requested, ${available} free among the eligible ones`, {}, 'NO_CAPACITY')
    this.requested = requested
    this.available = available
  }
}

/** The order was seen before (accepted already). Nothing was written. */
export class ReplayError extends LedgerError {
  override name = 'ReplayError'
  readonly orderId: string
  constructor (orderId: string) {
    super(`order ${orderId} was already accepted`, {}, 'REPLAY')
    this.orderId = orderId
  }
}

/** The lease state machine does not allow this step. Nothing was written. */
export class InvalidTransitionError extends LedgerError {
  override name = 'InvalidTransitionError'
  readonly leaseId: string
  readonly from: string
  readonly to: string
  constructor (leaseId: string, from: string, to: string) {
    super(`lease ${leaseId} cannot go from ${from} to ${to}`, {}, 'INVALID_TRANSITION')
    this.leaseId = leaseId
    this.from = from
    this.to = to
  }
}

/** A value the ledger cannot store as given (negative money, bad sequence, malformed JSON...). */
export class InvalidInputError extends LedgerError {
  override name = 'InvalidInputError'
  readonly field: string
  constructor (field: string, message: string) {
    super(`${field}: ${message}`, {}, 'INVALID_INPUT')
    this.field = field
  }
}

export type UsagePeriodOrderReason =
  | 'LEASE_NOT_METERED'
  | 'INDEX_GAP'
  | 'NOT_CONTIGUOUS'
  | 'EMPTY_PERIOD'
  | 'CUMULATIVE_MISMATCH'
  | 'AFTER_FINAL'

/** A usage period that does not extend the lease's periods exactly. Nothing was written. */
export class UsagePeriodOrderError extends LedgerError {
  override name = 'UsagePeriodOrderError'
  readonly reason: UsagePeriodOrderReason
  readonly leaseId: string
  constructor (leaseId: string, reason: UsagePeriodOrderReason, message: string) {
    super(`lease ${leaseId}: ${message}`, {}, 'USAGE_PERIOD_ORDER')
    this.reason = reason
    this.leaseId = leaseId
  }
}

export type VoucherOrderReason = 'SEQUENCE_NOT_INCREASING' | 'CUMULATIVE_DECREASING'

/** A voucher older than, or paying less than, the newest one already held. Nothing was written. */
export class VoucherOrderError extends LedgerError {
  override name = 'VoucherOrderError'
  readonly reason: VoucherOrderReason
  readonly leaseId: string
  constructor (leaseId: string, reason: VoucherOrderReason, message: string) {
    super(`lease ${leaseId}: ${message}`, {}, 'VOUCHER_ORDER')
    this.reason = reason
    this.leaseId = leaseId
  }
}

interface SqliteLikeError { code?: unknown, message?: unknown }

/** Maps a better-sqlite3 error to a ledger error; ledger errors pass through unchanged. */
export function toLedgerError (err: unknown, what: string): LedgerError {
  if (err instanceof LedgerError) return err
  const code = typeof (err as SqliteLikeError | null)?.code === 'string' ? (err as { code: string }).code : undefined
  const detail = err instanceof Error ? err.message : String(err)
  if (code !== undefined && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))) {
    return new LedgerBusyError(`${what}: database is busy (${detail})`, { cause: err, sqliteCode: code })
  }
  return new LedgerError(`${what}: ${detail}`, code === undefined ? { cause: err } : { cause: err, sqliteCode: code })
}
