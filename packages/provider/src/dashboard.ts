import { readFile } from 'node:fs/promises'
import type { Ledger, LeaseRecord } from '@gpumesh/ledger'
import { cumulativeAmount } from '@gpumesh/protocol'
import type { ApiRoute } from './api.js'

/**
 * The GPU owner's dashboard: one page, its stylesheet and script, all served by the daemon from
 * `packages/provider/dashboard/` (no CDN, no external request: the CSP forbids them). The page reads the
 * same JSON endpoints as `gpumesh provider status`.
 */

const ASSETS_DIR = new URL('../dashboard/', import.meta.url)
const ASSETS: Record<string, { file: string, contentType: string, page: boolean }> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8', page: true },
  '/dashboard.css': { file: 'dashboard.css', contentType: 'text/css; charset=utf-8', page: false },
  '/dashboard.js': { file: 'dashboard.js', contentType: 'text/javascript; charset=utf-8', page: false }
}

/** The dashboard's routes, its files read once at start. */
export async function dashboardRoutes (): Promise<Record<string, ApiRoute>> {
  const routes: Record<string, ApiRoute> = {}
  for (const [path, asset] of Object.entries(ASSETS)) {
    const body = await readFile(new URL(asset.file, ASSETS_DIR), 'utf8')
    const out = { contentType: asset.contentType, body }
    routes[path] = { page: asset.page, handler: () => out }
  }
  return routes
}

/** An active lease as the dashboard shows it: how long it has run and what it has cost so far. */
export interface ActiveLeaseView {
  leaseId: string
  state: string
  renter: string
  gpuClass: string
  gpus: string[]
  token: string
  pricePerGpuHour: bigint
  /** What the lease costs per hour on all its GPUs. */
  pricePerHour: bigint
  createdAt: number
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
    leaseId: lease.leaseId,
    state: lease.state,
    renter: lease.renter,
    gpuClass: lease.gpuClass,
    gpus: lease.gpus,
    token: lease.token,
    pricePerGpuHour: lease.pricePerGpuHour,
    pricePerHour: lease.pricePerGpuHour * BigInt(gpuCount),
    createdAt: lease.createdAt,
    startedAt: lease.startedAt,
    durationSec: lease.durationSec,
    elapsedMs: lease.startedAt === null ? 0 : Math.max(0, now - lease.startedAt),
    usagePeriods: periods.length,
    metered,
    vouchered: ledger.latestVoucher(lease.leaseId)?.cumulativeAmount ?? 0n,
    costSoFar
  }
}
