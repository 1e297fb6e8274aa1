/**
 * @gpumesh/ledger — the provider's SQLite store: GPUs, offers, leases and their events, usage samples
 * and periods, vouchers, settlements. The truth for money and usage. Money is bigint base units.
 */
export { Ledger, openLedger } from './ledger.js'
export type { LedgerEvents, ListLeasesOptions, ListRejectionsOptions } from './ledger.js'
export {
  LEASE_STATES, LEASE_TRANSITIONS, canTransition, isActiveLeaseState, isEndedLeaseState, isLeaseState
} from './lease-state.js'
export type { ActiveLeaseState, EndedLeaseState, LeaseState } from './lease-state.js'
export { SCHEMA_VERSION } from './migrations.js'
export { DEFAULT_BUSY_TIMEOUT_MS, MAX_VOUCHER_SEQUENCE } from './constants.js'
export {
  InvalidInputError, InvalidTransitionError, LedgerBusyError, LedgerClosedError, LedgerError, LedgerVersionError,
  NoCapacityError, NotFoundError, ReplayError, UsagePeriodOrderError, VoucherOrderError
} from './errors.js'
export type {
  LedgerErrorCode, NotFoundKind, UsagePeriodOrderReason, VoucherOrderReason
} from './errors.js'
export type * from './types.js'
