import type { Ledger, LeaseRecord } from '@gpumesh/ledger'
import { cumulativeAmount } from '@gpumesh/protocol'

/**
 * What the daemon shows of a lease: the summary in `provider status`, and the fuller view of an active
 * lease (time run, cost so far) that the dashboard reads, built on it.
 */

/** A lease as `provider status` lists it. */
export interface LeaseSummary {
  leaseId: string
  state: string
  renter: string
  gpuClass: string
  gpus: string[]
  pricePerGpuHour: bigint
  startDeadline: number
  createdAt: number
}

export function leaseSummary (lease: LeaseRecord): LeaseSummary {
  return {
    leaseId: lease.leaseId,
    state: lease.state,
    renter: lease.renter,
    gpuClass: lease.gpuClass,
    gpus: lease.gpus,
    pricePerGpuHour: lease.pricePerGpuHour,
    startDeadline: lease.startDeadline,
    createdAt: lease.createdAt
  }
}

/** An active lease as the dashboard shows it: how long it has run and what it has cost so far. */
export interface ActiveLeaseView extends LeaseSummary {
  token: string
  /** What the lease costs per hour on all its GPUs. */
  pricePerHour: bigint
  startedAt: number | null
  durationSec: number
  /** Milliseconds since the job started (0 before). */
  elapsedMs: number
  usagePeriods: number
  /** The cumulative amount of the newest usage period. */
  metered: bigint
  /** The newest voucher's cumulative amount (0 without one). */
  vouchered: bigint
  /**
   * Metered plus the current, still open period at the lease price: rises every second while the job
   * runs. An estimate for display (the open period is timed on the wall clock here, on the monotonic
   * clock by the meter); what is billed is `metered`.
   */
  costSoFar: bigint
}

/** Active leases with their cost so far at `now`. */
export function activeLeaseViews (ledger: Ledger, now: number): ActiveLeaseView[] {
  return ledger.activeLeases().map((lease) => activeLeaseView(ledger, lease, now))
}

function activeLeaseView (ledger: Ledger, lease: LeaseRecord, now: number): ActiveLeaseView {
  const periods = ledger.usagePeriods(lease.leaseId)
  const last = periods.at(-1)
  const gpuMs = periods.reduce((sum, p) => sum + p.gpuMs, 0n)
  const metered = last?.cumulativeAmount ?? 0n
  const gpuCount = lease.gpus.length > 0 ? lease.gpus.length : lease.gpuCount
  let costSoFar = metered
  if (lease.state === 'running' && lease.startedAt !== null) {
    const openMs = Math.min(Math.max(0, now - lease.startedAt - (last?.endOffsetMs ?? 0)), lease.billingIntervalSec * 1000)
    const estimate = cumulativeAmount(lease.pricePerGpuHour, gpuMs + BigInt(openMs * gpuCount))
    if (estimate > costSoFar) costSoFar = estimate
  }
  return {
    ...leaseSummary(lease),
    token: lease.token,
    pricePerHour: lease.pricePerGpuHour * BigInt(gpuCount),
    startedAt: lease.startedAt,
    durationSec: lease.durationSec,
    elapsedMs: lease.startedAt === null ? 0 : Math.max(0, now - lease.startedAt),
    usagePeriods: periods.length,
    metered,
    vouchered: ledger.latestVoucher(lease.leaseId)?.cumulativeAmount ?? 0n,
    costSoFar
  }
}
