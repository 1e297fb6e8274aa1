import type { Bytes32, JobEvent, LeaseTerms, PaymentSignature, UsageReport } from '@gpumesh/protocol'
import type { JobFollowResult } from './job-client.js'
import type { GrantedLease } from './order-client.js'

/**
 * The small local record a renter keeps per lease, so that `status`, `logs` and `cancel` work later,
 * from another process, and how what following a job learns is folded into it. `lease-store.ts`
 * writes and reads it.
 */

/** States a local record can be in. The provider's own lease states are `running`, `completed`, … */
export type LocalLeaseState = 'leased' | 'uploading' | 'running' | 'completed' | 'failed' | 'terminated' | 'cancelled' | 'provider-gone'

export const LOCAL_LEASE_STATES = ['leased', 'uploading', 'running', 'completed', 'failed', 'terminated', 'cancelled', 'provider-gone'] as const satisfies readonly LocalLeaseState[]

export const FINAL_RECORD_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'terminated', 'cancelled', 'provider-gone'])

/** What the renter remembers of one lease (`<dir>/<lease id>.json`). Amounts are base units. */
export interface LocalLeaseRecord {
  leaseId: Bytes32
  createdAt: number
  updatedAt: number
  state: LocalLeaseState
  terms: LeaseTerms
  signature: PaymentSignature
  providerPeerId: string
  providerAddresses: string[]
  via: 'matcher' | 'provider'
  /** The job file the lease was made for, when there was one. */
  jobFile: string | null
  tokenDecimals: number
  budget: bigint
  /** When this renter saw the job start, on its own clock; re-attaching bounds what it pays by it. */
  startedAt: number | null
  /** Highest job event sequence seen. */
  lastSequence: number
  /** Cumulative amount of the newest voucher signed. */
  paid: bigint
  voucherSequence: bigint
  /** The note of the last `checkpoint` event. */
  lastCheckpoint: string | null
  exitCode: number | null
  /** The provider's reason when the job was terminated (UNPAID, RENTER_CANCEL, MAX_RUNTIME, …). */
  reason: string | null
  /** Billed time so far (end of the last usage period, ms) and GPU time (ms). */
  billedMs: number
  gpuMilliseconds: bigint
  artifactsDir: string | null
}

/** A fresh record for a lease just granted. */
export function newLeaseRecord (lease: GrantedLease, fields: { jobFile: string | null, tokenDecimals: number, budget: bigint, now: number }): LocalLeaseRecord {
  return {
    leaseId: lease.terms.leaseId,
    createdAt: fields.now,
    updatedAt: fields.now,
    state: 'leased',
    terms: lease.terms,
    signature: lease.signature,
    providerPeerId: lease.providerPeerId,
    providerAddresses: lease.providerAddresses,
    via: lease.via,
    jobFile: fields.jobFile,
    tokenDecimals: fields.tokenDecimals,
    budget: fields.budget,
    startedAt: null,
    lastSequence: 0,
    paid: 0n,
    voucherSequence: 0n,
    lastCheckpoint: null,
    exitCode: null,
    reason: null,
    billedMs: 0,
    gpuMilliseconds: 0n,
    artifactsDir: null
  }
}

/**
 * Folds what following the job to its end learned into the record: the newest voucher, the last
 * event, the exit and the final state. Used by the session and by later attaches (status, logs).
 */
export function applyOutcome (record: LocalLeaseRecord, outcome: JobFollowResult): void {
  if (outcome.paid > record.paid) record.paid = outcome.paid
  record.lastSequence = Math.max(record.lastSequence, outcome.lastSequence)
  record.exitCode = outcome.exitCode
  record.reason = outcome.reason ?? record.reason
  record.state = toRecordState(outcome.state)
}

/**
 * What following a job tells its record, the same for the session and for a later attach (`lease
 * status`, `lease logs`): the last event seen, the billed and GPU time of usage reports, the newest
 * voucher signed.
 */
export function recordFollower (record: LocalLeaseRecord): {
  onEvent: (e: JobEvent) => void
  onVoucher: (v: { cumulativeAmount: bigint, sequence: bigint }) => void
} {
  return {
    onEvent: (e) => {
      record.lastSequence = Math.max(record.lastSequence, e.sequence)
      if (e.kind === 'usage' && e.report != null) recordUsage(record, e.report.report)
    },
    onVoucher: (v) => {
      record.paid = v.cumulativeAmount
      record.voucherSequence = v.sequence
    }
  }
}

/**
 * Folds a usage report into the record: periods tile the lease from offset 0, so the billed time is
 * the newest report's end and the GPU time that end × the leased GPUs (the same report seen twice, on a
 * replay, changes nothing).
 */
export function recordUsage (record: LocalLeaseRecord, report: UsageReport): void {
  record.billedMs = Math.max(record.billedMs, report.endOffsetMs)
  const gpuMs = BigInt(report.endOffsetMs) * BigInt(record.terms.gpus.length)
  if (gpuMs > record.gpuMilliseconds) record.gpuMilliseconds = gpuMs
}

/**
 * The start time to measure reports against when attaching again: when this renter saw the job
 * start, else when it was granted the lease (the job cannot have started before). Never the
 * provider's own claim, which a dishonest provider could move back to bill more.
 */
export function attachStartedAt (record: LocalLeaseRecord): number {
  return record.startedAt ?? record.createdAt
}

function toRecordState (state: string): LocalLeaseState {
  return state === 'completed' || state === 'failed' || state === 'terminated' ? state : 'failed'
}
