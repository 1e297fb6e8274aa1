/**
 * Matching: which providers in the book can serve an order, best first. Pure: no I/O, time injected.
 *
 * An offered GPU kind fits an order when every check in `MISMATCH_REASONS` passes (see
 * `entryMismatch`). A provider is represented by its cheapest fitting kind (ties: class name, then
 * position in the offer). Candidates rank by price ascending, then the provider's record with this
 * matcher (higher score first), then latency (lower first, unknown last), then peer id.
 *
 * `findCandidates` walks the book's price index cheapest first, a price at a time, and stops once it
 * holds `limit` providers at the end of a price: everything at that boundary price is considered,
 * because the secondary ranks may reorder it; only the best `limit` are kept as it goes.
 * `findCandidatesLinear` is the plain scan of every offer,
 * kept as the reference the index must agree with and as the benchmark's baseline.
 */
import { compareComputeCapability, comparePrices, parseComputeCapability } from './order-book.js'
import type { BookEntry, BookRecord, OrderBook } from './order-book.js'
import type { Offer, Order } from '@gpumesh/protocol'

/** Why an offered GPU kind does not fit an order, in the order the checks run. */
export const MISMATCH_REASONS = [
  'EXPIRED',
  'TOKEN',
  'SETTLEMENT',
  'SIMULATED',
  'CLASS',
  'MEMORY',
  'COMPUTE_CAPABILITY',
  'REGION',
  'OPERATOR',
  'TOO_FEW_GPUS',
  'DURATION',
  'PRICE'
] as const
export type MismatchReason = typeof MISMATCH_REASONS[number]

/** What ranks providers by their history; `ProviderRecords` is one. Higher is better. */
export interface ProviderScores {
  score: (peerId: string) => number
}

export interface MatchOptions {
  /** Unix milliseconds; offers with `expiresAt <= now` never match. */
  now: number
  records: ProviderScores
  /** Round-trip time to a provider in milliseconds, or undefined when unknown (ranks last). */
  latency?: (peerId: string) => number | undefined
  /** Most candidates to return. */
  limit: number
}

export interface Candidate {
  peerId: string
  offer: Offer
  /** The provider's cheapest fitting GPU class. */
  gpuClass: string
  pricePerGpuHour: bigint
  /** GPUs to lease (the order's count). */
  gpuCount: number
}

/** An order with what the checks need derived once. */
export interface PreparedOrder {
  readonly order: Order
  /** Acceptable classes, or null for any. */
  readonly classes: ReadonlySet<string> | null
  /** Lower-cased operators, or null for any. */
  readonly operators: ReadonlySet<string> | null
  /** Lower-cased token. */
  readonly token: string
  /** `Number(order.chainId)`. */
  readonly chainIdNumber: number
  /** Lower-cased `requirements.escrow`, or null for any. */
  readonly escrow: string | null
  /** Parsed minimum compute capability; null for none. */
  readonly minComputeCapability: readonly number[] | null
  /** True when the order names a minimum that cannot be read: no GPU meets it. */
  readonly unreadableComputeCapability: boolean
}

export function prepareOrder (order: Order): PreparedOrder {
  const r = order.requirements
  const minText = r.minComputeCapability
  const minComputeCapability = parseComputeCapability(minText)
  return {
    order,
    classes: r.classes.length === 0 ? null : new Set(r.classes),
    operators: r.operators.length === 0 ? null : new Set(r.operators.map((o) => o.toLowerCase())),
    token: order.token.toLowerCase(),
    chainIdNumber: Number(order.chainId),
    escrow: r.escrow == null ? null : r.escrow.toLowerCase(),
    minComputeCapability,
    unreadableComputeCapability: minText != null && minComputeCapability == null
  }
}

/** The first check (in `MISMATCH_REASONS` order) that the entry fails, or null when it fits. */
export function entryMismatch (entry: BookEntry, prepared: PreparedOrder, now: number): MismatchReason | null {
  const { record, gpu } = entry
  const offer = record.offer
  const order = prepared.order
  const r = order.requirements
  if (offer.expiresAt <= now) return 'EXPIRED'
  if (record.token !== prepared.token || offer.chainId !== order.chainId) return 'TOKEN'
  if (prepared.escrow != null && record.escrow !== prepared.escrow) return 'SETTLEMENT'
  if (gpu.simulated && !r.allowSimulated) return 'SIMULATED'
  if (prepared.classes != null && !prepared.classes.has(gpu.class)) return 'CLASS'
  if (gpu.memoryMiB < r.minMemoryMiB) return 'MEMORY'
  if (prepared.unreadableComputeCapability) return 'COMPUTE_CAPABILITY'
  if (prepared.minComputeCapability != null &&
    (entry.computeCapability == null || compareComputeCapability(entry.computeCapability, prepared.minComputeCapability) < 0)) {
    return 'COMPUTE_CAPABILITY'
  }
  if (r.region != null && offer.region !== r.region) return 'REGION'
  if (prepared.operators != null && (record.operator == null || !prepared.operators.has(record.operator))) return 'OPERATOR'
  if (gpu.countFree < r.gpuCount) return 'TOO_FEW_GPUS'
  if (order.durationSec < offer.minLeaseSec || order.durationSec > offer.maxLeaseSec) return 'DURATION'
  if (entry.price > order.maxPricePerGpuHour) return 'PRICE'
  return null
}

/**
 * `entryMismatch(...) === null` for an entry of one of the order's classes priced at most its maximum
 * (what the index walk visits), on the fields the book derived once: the same checks less class and
 * price, the most selective first, bigints compared only where their numbers cannot tell.
 */
function fitsWalked (entry: BookEntry, prepared: PreparedOrder, now: number): boolean {
  const order = prepared.order
  const r = order.requirements
  if (entry.countFree < r.gpuCount) return false
  if (entry.simulated && !r.allowSimulated) return false
  if (r.region != null && entry.region !== r.region) return false
  if (entry.memoryMiB < r.minMemoryMiB) return false
  if (entry.expiresAt <= now) return false
  if (order.durationSec < entry.minLeaseSec || order.durationSec > entry.maxLeaseSec) return false
  if (entry.token !== prepared.token || entry.chainIdNumber !== prepared.chainIdNumber) return false
  const record = entry.record
  if (entry.chainIdNumber > Number.MAX_SAFE_INTEGER && record.offer.chainId !== order.chainId) return false
  if (prepared.escrow != null && record.escrow !== prepared.escrow) return false
  if (prepared.minComputeCapability != null &&
    (entry.computeCapability == null || compareComputeCapability(entry.computeCapability, prepared.minComputeCapability) < 0)) {
    return false
  }
  if (prepared.operators != null && (record.operator == null || !prepared.operators.has(record.operator))) return false
  return true
}

interface Ranked {
  candidate: Candidate
  score: number
  /** Infinity when unknown. */
  latency: number
}

function rankKey (candidate: Candidate, options: MatchOptions): Ranked {
  const latency = options.latency?.(candidate.peerId)
  return {
    candidate,
    score: options.records.score(candidate.peerId),
    latency: latency == null || Number.isNaN(latency) ? Infinity : latency
  }
}

function compareRanked (a: Ranked, b: Ranked): number {
  const pa = a.candidate.pricePerGpuHour
  const pb = b.candidate.pricePerGpuHour
  if (pa !== pb) return pa < pb ? -1 : 1
  if (a.score !== b.score) return a.score > b.score ? -1 : 1
  if (a.latency !== b.latency) return a.latency < b.latency ? -1 : 1
  const ia = a.candidate.peerId
  const ib = b.candidate.peerId
  return ia < ib ? -1 : ia > ib ? 1 : 0
}

/** An entry the index walk found, with its rank: `level` counts the prices walked, so it orders by price. */
interface Walked {
  entry: BookEntry
  level: number
  score: number
  /** Infinity when unknown. */
  latency: number
}

function walked (entry: BookEntry, level: number, options: MatchOptions): Walked {
  const latency = options.latency?.(entry.peerId)
  return {
    entry,
    level,
    score: options.records.score(entry.peerId),
    latency: latency == null || Number.isNaN(latency) ? Infinity : latency
  }
}

/** `compareRanked` for walked entries (price by level, no bigints). */
function compareWalked (a: Walked, b: Walked): number {
  if (a.level !== b.level) return a.level - b.level
  if (a.score !== b.score) return a.score > b.score ? -1 : 1
  if (a.latency !== b.latency) return a.latency < b.latency ? -1 : 1
  const ia = a.entry.peerId
  const ib = b.entry.peerId
  return ia < ib ? -1 : ia > ib ? 1 : 0
}

/** Puts `item` where it ranks in `best` (sorted by `compare`), keeping at most `limit`. */
function keepBest<T> (best: T[], item: T, limit: number, compare: (a: T, b: T) => number): void {
  const worst = best[best.length - 1]
  if (best.length >= limit && worst !== undefined && compare(item, worst) >= 0) return
  let at = best.length
  while (at > 0 && compare(item, best[at - 1] as T) < 0) at--
  best.splice(at, 0, item)
  if (best.length > limit) best.pop()
}

function toCandidate (entry: BookEntry, gpuCount: number): Candidate {
  return {
    peerId: entry.peerId,
    offer: entry.record.offer,
    gpuClass: entry.gpuClass,
    pricePerGpuHour: entry.price,
    gpuCount
  }
}

/**
 * Providers that can serve `order`, best first, at most `options.limit`. Uses the book's price index:
 * takes the order's classes a price at a time (the cheapest head of any class, then every entry of
 * every class at that price, classes in name order, so a provider's first fitting entry met is its
 * cheapest by `compareEntries`) until `limit` providers are held at the end of a price.
 */
export function findCandidates (book: OrderBook, order: Order, options: MatchOptions): Candidate[] {
  const limit = Math.floor(options.limit)
  if (!(limit > 0)) return []
  const prepared = prepareOrder(order)
  if (prepared.unreadableComputeCapability) return []
  const maxPrice = order.maxPricePerGpuHour
  const now = options.now
  const minMemoryMiB = order.requirements.minMemoryMiB
  const minComputeCapability = prepared.minComputeCapability
  const lists = book.summaries(
    order.requirements.classes.length === 0 ? undefined : order.requirements.classes,
    (summary) => summary.hasMemoryAtLeast(minMemoryMiB) && summary.hasComputeCapabilityAtLeast(minComputeCapability)
  ).map((summary) => summary.entries)
  const positions = lists.map(() => 0)
  const seen = new Set<string>()
  const best: Walked[] = []
  for (let level = 0; seen.size < limit; level++) {
    let next: BookEntry | undefined
    for (let i = 0; i < lists.length; i++) {
      const head = (lists[i] as readonly BookEntry[])[positions[i] as number]
      if (head !== undefined && (next === undefined || comparePrices(head, next) < 0)) next = head
    }
    if (next === undefined || next.price > maxPrice) break
    for (let i = 0; i < lists.length; i++) {
      const list = lists[i] as readonly BookEntry[]
      let at = positions[i] as number
      for (; at < list.length; at++) {
        const entry = list[at] as BookEntry
        if (comparePrices(entry, next) !== 0) break
        if (!fitsWalked(entry, prepared, now) || seen.has(entry.peerId)) continue
        seen.add(entry.peerId)
        keepBest(best, walked(entry, level, options), limit, compareWalked)
      }
      positions[i] = at
    }
  }
  return best.map((w) => toCandidate(w.entry, order.requirements.gpuCount))
}

/** The provider's cheapest fitting entry (ties: class name, then position in the offer), or undefined. */
function cheapestFitting (record: BookRecord, prepared: PreparedOrder, now: number): BookEntry | undefined {
  let best: BookEntry | undefined
  for (const entry of record.entries) {
    if (entryMismatch(entry, prepared, now) != null) continue
    if (best == null || entry.price < best.price ||
      (entry.price === best.price && (entry.gpuClass < best.gpuClass ||
        (entry.gpuClass === best.gpuClass && entry.gpuIndex < best.gpuIndex)))) {
      best = entry
    }
  }
  return best
}

/**
 * The same result as `findCandidates`, by a plain scan of every offer keeping the best `limit` so far
 * (no index). The reference for tests and the baseline for the benchmark.
 */
export function findCandidatesLinear (book: OrderBook, order: Order, options: MatchOptions): Candidate[] {
  const limit = Math.floor(options.limit)
  if (!(limit > 0)) return []
  const prepared = prepareOrder(order)
  const gpuCount = order.requirements.gpuCount
  const best: Array<Ranked> = []
  for (const record of book.records()) {
    const entry = cheapestFitting(record, prepared, options.now)
    if (entry == null) continue
    const worst = best[best.length - 1]
    if (best.length === limit && worst != null && entry.price > worst.candidate.pricePerGpuHour) continue
    keepBest(best, rankKey(toCandidate(entry, gpuCount), options), limit, compareRanked)
  }
  return best.map((r) => r.candidate)
}
