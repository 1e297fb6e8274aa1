import type { Clock } from '@gpumesh/protocol'
import type { LeaseState } from './lease-state.js'
import type { LedgerError } from './errors.js'

/**
 * The ledger's own record types. They mirror the wire messages of `@gpumesh/protocol` without importing
 * them: the ledger stores what it is given and hands it back; decoding and signatures are not its job.
 * (It takes protocol's `Clock`, of which it reads only the wall clock.)
 * Money is always bigint base units; times are integer Unix milliseconds unless named `offset`.
 */

/** 0x-prefixed hex: an Ethereum address. */
export type Address = `0x${string}`
/** 0x-prefixed hex, 32 bytes. */
export type Bytes32 = `0x${string}`

/** A pino-compatible subset; the ledger logs little (opening, migrations, expiries). */
export interface LedgerLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

export interface LedgerOptions {
  logger?: LedgerLogger
  /** Only `now()` is read. Default: the system clock. */
  clock?: Pick<Clock, 'now'>
  /** Default 5000. */
  busyTimeoutMs?: number
}

export type GpuVendor = 'nvidia' | 'amd' | 'simulated'

/** What the probe says about a GPU. */
export type GpuHealthState = 'free' | 'unhealthy' | 'busy' | 'gone'

/**
 * A GPU's state as shown: its probe state, unless an active lease holds it, which makes it `reserved`
 * (lease accepted) or `leased` (job running).
 */
export type GpuState = GpuHealthState | 'reserved' | 'leased'

export interface GpuInput {
  uuid: string
  index: number
  vendor: GpuVendor
  name: string
  class: string
  memoryMiB: number
  simulated: boolean
  state: GpuHealthState
  /** Why the GPU is unhealthy or busy; empty when it is fine. */
  problems: string[]
}

export interface GpuRecord extends Omit<GpuInput, 'state'> {
  state: GpuState
  /** The active lease holding it, if any. */
  leaseId: string | null
  firstSeen: number
  lastSeen: number
}

export interface OfferRecord {
  sequence: number
  publishedAt: number
  expiresAt: number
  /** The encoded offer as published. */
  body: string
  gpusFree: number
}

/** A lease's fixed terms as `reserveLease` takes them and `LeaseRecord` keeps them. */
export type LeaseFixedFields = Pick<LeaseRecord,
  'leaseId' | 'orderId' | 'renter' | 'renterPeerId' | 'matcherPeerId' | 'provider' | 'token' | 'chainId' | 'pricePerGpuHour' |
  'gpuClass' | 'gpuCount' | 'durationSec' | 'billingIntervalSec' | 'paymentGraceSec' | 'startDeadline' | 'jobHash'>

export interface ReserveLeaseInput extends LeaseFixedFields {
  /** The order's own expiry: until then its id is remembered for replay detection. */
  orderExpiresAt: number
  /** GPUs that fit the lease, most preferred first; the first `gpuCount` free ones are taken. */
  eligibleGpuUuids: readonly string[]
  /** Signed lease terms (JSON text), when already known; else set later with `setLeaseTerms`. */
  terms?: string | null
  /** The escrow contract that settles the lease; the zero address (default) settles off-chain. */
  escrow?: Address
  /** Stored with the `proposed → accepted` event. */
  detail?: Record<string, unknown>
}

export interface LeaseRecord {
  leaseId: Bytes32
  orderId: Bytes32
  renter: Address
  renterPeerId: string
  /** Null when the renter proposed directly. */
  matcherPeerId: string | null
  provider: Address
  token: Address
  chainId: bigint
  pricePerGpuHour: bigint
  gpuClass: string
  gpuCount: number
  durationSec: number
  billingIntervalSec: number
  paymentGraceSec: number
  startDeadline: number
  jobHash: Bytes32
  /** Signed lease terms (JSON text) or null until set. */
  terms: string | null
  /** The escrow contract that settles the lease; the zero address when it settles off-chain. */
  escrow: Address
  /** GPU UUIDs, in the order they were chosen. */
  gpus: string[]
  state: LeaseState
  stateReason: string
  createdAt: number
  updatedAt: number
  startedAt: number | null
  endedAt: number | null
  jobPid: number | null
  jobPidStartTime: number | null
  jobDir: string | null
  exitCode: number | null
}

/** Extra columns a transition may set along with the state. */
export interface TransitionExtra {
  /** Defaults to the clock's now when moving to running. */
  startedAt?: number
  /** Defaults to the clock's now when moving to an ended state. */
  endedAt?: number
  exitCode?: number | null
}

export interface LeaseJob {
  pid: number
  /** Process start time (e.g. from /proc/<pid>/stat) to tell a reused pid apart after a restart. */
  pidStartTime: number
  jobDir: string
}

export interface LeaseEventRecord {
  id: number
  leaseId: string
  at: number
  /** Null for the event that created the lease. */
  fromState: LeaseState | null
  toState: LeaseState
  reason: string
  detail: Record<string, unknown> | null
}

/** A proposal turned down before it became a lease. */
export interface RejectionInput {
  /** Null when the proposal was too malformed to carry one. */
  orderId: string | null
  renter: string | null
  matcherPeerId: string | null
  /** A reject code such as NO_CAPACITY, PRICE_TOO_LOW, REPLAY. */
  code: string
  message: string
  /** The proposal as received (JSON text), when it decoded. */
  proposal?: string | null
}

export interface RejectionRecord {
  id: number
  at: number
  orderId: string | null
  renter: string | null
  matcherPeerId: string | null
  code: string
  message: string
  proposal: string | null
}

export interface UsageSample {
  leaseId: string
  /** Milliseconds on the lease's monotonic clock since the job started. */
  offsetMs: number
  /** Wall-clock time of the sample. */
  at: number
  gpuUuid: string
  utilizationPercent: number | null
  memoryUsedMiB: number | null
  powerW: number | null
}

export interface UsageSampleRecord extends UsageSample {
  id: number
}

export interface UsagePeriodInput {
  leaseId: string
  periodIndex: number
  startOffsetMs: number
  endOffsetMs: number
  gpuMs: bigint
  amount: bigint
  cumulativeAmount: bigint
  avgUtilizationBp: number | null
  peakMemoryMiB: number | null
  energyMj: bigint | null
  final: boolean
  /** The signed usage report (JSON text). */
  report: string
}

export interface UsagePeriodRecord extends UsagePeriodInput {
  createdAt: number
}

/** What `queueUsagePeriod` calls, exactly once, when its period's transaction is over. */
export interface UsagePeriodWritten {
  /** The period is committed (fsync'd). */
  written: (record: UsagePeriodRecord) => void
  /** The period was refused or could not be written; nothing of it is in the ledger. */
  failed: (err: LedgerError) => void
}

export interface VoucherInput {
  leaseId: string
  /** uint64. */
  sequence: bigint
  cumulativeAmount: bigint
  /** The renter's signature (0x hex). */
  signature: string
  /** The voucher as received (JSON text). */
  body: string
}

export interface VoucherRecord extends VoucherInput {
  receivedAt: number
}

export type SettlementKind = 'offchain' | 'onchain'
export type SettlementState = 'pending' | 'exported' | 'submitted' | 'confirmed' | 'failed'

export interface SettlementInput {
  kind: SettlementKind
  leaseIds: string[]
  total: bigint
  txHash: string | null
  /** The exported or submitted batch (JSON text). */
  batch: string | null
  state: SettlementState
}

export interface SettlementRecord extends SettlementInput {
  id: number
  createdAt: number
  updatedAt: number
  /** Why an on-chain batch failed; null otherwise. */
  error: string | null
  /** Block of the confirmed transaction; null until confirmed. */
  blockNumber: number | null
  /** Gas the confirmed transaction used; null until confirmed. */
  gasUsed: bigint | null
}

// ── Settlement ─────────────────────────────────────────────────────────────────────────────────────

/** One lease in a settlement batch: the newest voucher it carried. */
export interface SettlementEntryInput {
  leaseId: string
  /** uint64: the voucher's sequence. */
  sequence: bigint
  cumulativeAmount: bigint
}

export interface SettlementEntryRecord extends SettlementEntryInput {
  settlementId: number
  /** What this entry paid (on-chain) or added to what was exported (off-chain); null until known. */
  paidAmount: bigint | null
  /** The escrow's per-entry code (PAID, CAPPED, REPLAY, …), EXPORTED off-chain; null until known. */
  code: string | null
}

/** A settlement batch with its entries. */
export interface SettlementBatchRecord extends SettlementRecord {
  entries: SettlementEntryRecord[]
}

export interface UnsettledVouchersOptions {
  /** onchain: leases settled by an escrow (optionally this one); offchain: leases whose escrow is zero. */
  kind: SettlementKind
  /** Only this escrow (on-chain). */
  escrow?: Address
  /** Only leases whose newest voucher arrived at or after this time (ms). */
  since?: number
  /** Only leases whose unsettled amount is at least this. Default 1 (anything unsettled). */
  minAmount?: bigint
}

/** A lease whose newest voucher is above what was settled for it. */
export interface UnsettledVoucher {
  lease: LeaseRecord
  voucher: VoucherRecord
  /** Redeemed on-chain (the chain's figure as last recorded) or exported off-chain, by kind. */
  settled: bigint
  /** voucher.cumulativeAmount − settled (> 0). */
  unsettled: bigint
}

/** The result of one entry of a confirmed on-chain batch. */
export interface SettlementEntryOutcome {
  leaseId: string
  paidAmount: bigint
  code: string
  /** What the escrow says the lease was paid in all after this batch, when known (from the event). */
  redeemedTotal: bigint | null
}

export interface ConfirmSettlementInput {
  txHash: string
  blockNumber: number | null
  gasUsed: bigint | null
  entries: SettlementEntryOutcome[]
}

/** A lease's on-chain paid amount as read from the escrow. */
export interface ChainPaid {
  leaseId: string
  redeemed: bigint
}

export interface EarningsOptions {
  /** Only leases created at or after this time (ms). */
  since?: number
}

/** Money figures of a set of leases. See the ledger README for each definition. */
export interface EarningsFigures {
  /** Metered: the cumulative amount of each lease's newest usage period. */
  accrued: bigint
  /** Covered by vouchers: the cumulative amount of each lease's newest voucher. */
  vouchered: bigint
  /** Exported off-chain: the cumulative amount of each lease's newest exported voucher. */
  exported: bigint
  /** Redeemed on-chain: what the escrow paid each lease, as last read from the chain. */
  redeemed: bigint
  /** Owed and not yet settled: Σ max(accrued, vouchered) − (redeemed + exported), per lease. */
  outstanding: bigint
  /** Metered but not covered by a voucher: Σ max(0, accrued − vouchered), per lease. */
  unvouchered: bigint
  leases: number
}

export interface RenterEarnings extends EarningsFigures {
  renter: Address
}

export interface TokenEarnings extends EarningsFigures {
  chainId: bigint
  token: Address
  /** Renters with something outstanding, largest first. */
  renters: RenterEarnings[]
}

export interface RenterExposureOptions {
  escrow: Address
  renter: Address
  token: Address
}

/**
 * What a renter owes a provider at one escrow and token and the escrow has not paid yet, over all its
 * leases there (in-flight batches included, since their money has not moved until they confirm).
 */
export interface RenterExposure {
  /** Σ max(0, newest voucher's cumulative − redeemed). */
  unredeemedVouchered: bigint
  /** Σ max(0, max(accrued, vouchered) − redeemed): also what was metered but not yet vouchered. */
  unredeemedOwed: bigint
  leases: number
}

/** One lease's settlement figures (for `lease status` and `leases`). */
export interface LeaseSettlementView {
  leaseId: string
  kind: SettlementKind
  escrow: Address
  accrued: bigint
  vouchered: bigint
  /** The newest voucher's sequence; null when there is none. */
  voucherSequence: bigint | null
  redeemed: bigint
  exported: bigint
  outstanding: bigint
  /** The newest batch this lease was in, and its state and transaction. */
  lastSettlementId: number | null
  lastSettlementState: SettlementState | null
  lastTxHash: string | null
  updatedAt: number | null
}

/** `Ledger.activityCounts()`: totals for monitoring. */
export interface ActivityCounts {
  leasesByState: Record<string, number>
  /** GPU-milliseconds of every usage period recorded. */
  gpuMs: bigint
  vouchers: number
  settlements: Array<{ kind: SettlementKind, state: SettlementState, count: number }>
}
