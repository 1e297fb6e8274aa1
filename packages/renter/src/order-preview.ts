import { costOf } from './quote.js'
import type { Offer } from '@gpumesh/protocol'
import type { JobFile } from './job-file.js'

/**
 * What a job's order would match now, without signing or sending anything: the offers of a matcher's
 * book that pass the checks a matcher makes (the same checks, in the same order, as the matcher's
 * `entryMismatch`: expiry, token and chain, simulated GPUs, class, memory, compute capability, region,
 * fleet operator, free GPUs, lease length, price), cheapest first, and the most the lease could cost.
 * A preview, not a promise: a provider may refuse the renter (its allow and deny lists), change its
 * price or lose capacity before the order arrives, and a matcher also ranks equal prices by its record
 * of each provider and by latency.
 */

export type PreviewMismatch =
  | 'EXPIRED' | 'TOKEN' | 'SIMULATED' | 'CLASS' | 'MEMORY' | 'COMPUTE_CAPABILITY' | 'REGION' | 'OPERATOR'
  | 'TOO_FEW_GPUS' | 'DURATION' | 'PRICE'

export interface PreviewCandidate {
  peerId: string
  gpuClass: string
  pricePerGpuHour: bigint
  countFree: number
  region: string | null
}

export interface OrderPreview {
  /** Fitting providers, each by its cheapest fitting GPU kind, cheapest first (ties: peer id). */
  candidates: PreviewCandidate[]
  /** Offers that do not fit, by the first check they fail. */
  mismatches: Partial<Record<PreviewMismatch, number>>
  /** GPU-milliseconds of the whole lease: GPUs × duration. */
  gpuMilliseconds: bigint
  /** The most the lease costs at the cheapest candidate's price, capped by the budget; null without one. */
  mostAtMatch: bigint | null
  /** The most it could cost at all: the price cap for the whole duration, capped by the budget. */
  mostAtCap: bigint
  budget: bigint
}

function capability (text: string | null): number[] | null {
  return text != null && /^\d+(?:\.\d+)*$/.test(text) ? text.split('.').map(Number) : null
}

function atLeast (have: readonly number[], want: readonly number[]): boolean {
  for (let i = 0; i < Math.max(have.length, want.length); i++) {
    const d = (have[i] ?? 0) - (want[i] ?? 0)
    if (d !== 0) return d > 0
  }
  return true
}

/** Previews `job`'s order against `offers` (already verified) at `now`, with `budget` in base units. */
export function previewOrder (job: JobFile, offers: readonly Offer[], now: number, budget: bigint): OrderPreview {
  const r = job.requirements
  const classes = r.classes.length === 0 ? null : new Set(r.classes)
  const operators = r.operators.length === 0 ? null : new Set(r.operators.map((o) => o.toLowerCase()))
  const minCc = capability(r.minComputeCapability)
  const token = job.token.address.toLowerCase()
  const mismatches: Partial<Record<PreviewMismatch, number>> = {}
  const candidates: PreviewCandidate[] = []
  const order: PreviewMismatch[] = ['EXPIRED', 'TOKEN', 'SIMULATED', 'CLASS', 'MEMORY', 'COMPUTE_CAPABILITY', 'REGION', 'OPERATOR', 'TOO_FEW_GPUS', 'DURATION', 'PRICE']
  for (const offer of offers) {
    let best: PreviewCandidate | null = null
    let furthest = -1
    for (const gpu of offer.gpus) {
      let miss: PreviewMismatch | null = null
      if (offer.expiresAt <= now) miss = 'EXPIRED'
      else if (offer.token.toLowerCase() !== token || offer.chainId !== job.token.chainId) miss = 'TOKEN'
      else if (gpu.simulated && !r.allowSimulated) miss = 'SIMULATED'
      else if (classes != null && !classes.has(gpu.class)) miss = 'CLASS'
      else if (gpu.memoryMiB < r.minMemoryMiB) miss = 'MEMORY'
      else if (r.minComputeCapability != null && (minCc == null || capability(gpu.computeCapability) == null || !atLeast(capability(gpu.computeCapability) ?? [], minCc))) miss = 'COMPUTE_CAPABILITY'
      else if (r.region != null && offer.region !== r.region) miss = 'REGION'
      else if (operators != null && (offer.fleet == null || !operators.has(offer.fleet.operator.toLowerCase()))) miss = 'OPERATOR'
      else if (gpu.countFree < r.gpuCount) miss = 'TOO_FEW_GPUS'
      else if (job.durationSec < offer.minLeaseSec || job.durationSec > offer.maxLeaseSec) miss = 'DURATION'
      else if (gpu.pricePerGpuHour > job.maxPricePerGpuHour) miss = 'PRICE'
      if (miss == null) {
        if (best == null || gpu.pricePerGpuHour < best.pricePerGpuHour || (gpu.pricePerGpuHour === best.pricePerGpuHour && gpu.class < best.gpuClass)) {
          best = { peerId: offer.peerId, gpuClass: gpu.class, pricePerGpuHour: gpu.pricePerGpuHour, countFree: gpu.countFree, region: offer.region }
        }
      } else {
        furthest = Math.max(furthest, order.indexOf(miss))
      }
    }
    if (best != null) candidates.push(best)
    else {
      // Counted by the check its closest GPU kind failed, as a matcher's explanation does.
      const reason = order[Math.max(0, furthest)] as PreviewMismatch
      mismatches[reason] = (mismatches[reason] ?? 0) + 1
    }
  }
  candidates.sort((a, b) => a.pricePerGpuHour !== b.pricePerGpuHour ? (a.pricePerGpuHour < b.pricePerGpuHour ? -1 : 1) : a.peerId < b.peerId ? -1 : 1)
  const gpuMilliseconds = BigInt(r.gpuCount) * BigInt(job.durationSec) * 1000n
  const cap = (amount: bigint): bigint => amount < budget ? amount : budget
  const first = candidates[0]
  return {
    candidates,
    mismatches,
    gpuMilliseconds,
    mostAtMatch: first == null ? null : cap(costOf(first.pricePerGpuHour, gpuMilliseconds)),
    mostAtCap: cap(costOf(job.maxPricePerGpuHour, gpuMilliseconds)),
    budget
  }
}
