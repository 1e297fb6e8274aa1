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
 * because the secondary ranks may reorder it. At each price it looks up the score of every provider
 * that fits, and the latency only of those whose score could still place them among the best `limit`.
 * `findCandidatesLinear` is the plain scan of every offer,
 * kept as the reference the index must agree with and as the benchmark's baseline.
 */
import { compareComputeCapability, comparePrices, parseComputeCapability } from './order-book.js'
import type { BookEntry, BookRecord, EntryList, OrderBook } from './order-book.js'
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

/** One list a walk takes: where it stands, and whether its entries need `fitsWalked` at all. */
interface WalkedList {
  readonly list: EntryList
  /** Whether to check the compute capability of each entry (its class has some below the minimum). */
  readonly checkComputeCapability: boolean
  /** Whether `fitsWalked` has anything to check. */
  readonly checkEntries: boolean
  at: number
}

/**
 * `entryMismatch(...) === null` for an entry of one of the order's classes priced at most its maximum,
 * that passed `EntryList.fits` (what the index walk checks first): the checks left, on the entry. The
 * compute capability only when `checkComputeCapability` (its class may have GPUs below the minimum).
 */
function fitsWalked (entry: BookEntry, prepared: PreparedOrder, checkComputeCapability: boolean): boolean {
  const record = entry.record
  if (prepared.escrow != null && record.escrow !== prepared.escrow) return false
  if (checkComputeCapability && prepared.minComputeCapability != null &&
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
  /** `entry.peerId`, read without touching the entry. */
  peerId: string
  level: number
  score: number
  /** Infinity when unknown. */
  latency: number
}

/** The providers first met at one price: the first `count` of parallel arrays reused from price to price. */
class LevelFits {
  readonly entries: BookEntry[] = []
  readonly peerIds: string[] = []
  readonly scores: number[] = []
  count = 0

  add (entry: BookEntry, peerId: string, score: number): void {
    const at = this.count++
    this.entries[at] = entry
    this.peerIds[at] = peerId
    this.scores[at] = score
  }
}

/**
 * Adds the providers that fit at one price (`fits`; the price is `level`) to `best`, which holds only
 * cheaper ones. When they are more than `best` has room for, one ranking below
 * `room` others at this price cannot be kept, so its latency is not even looked up: anything scoring
 * below the room-th highest score here is left out.
 */
function keepLevel (best: Walked[], fits: LevelFits, level: number, options: MatchOptions, limit: number): void {
  const { entries, peerIds, scores, count } = fits
  const room = limit - best.length
  const threshold = count > room ? nthHighest(scores, count, room) : -Infinity
  for (let i = 0; i < count; i++) {
    const score = scores[i] as number
    if (score < threshold) continue
    const peerId = peerIds[i] as string
    const known = options.latency?.(peerId)
    const latency = known == null || Number.isNaN(known) ? Infinity : known
    const worst = best.length >= limit ? best[best.length - 1] : undefined
    if (worst !== undefined && worst.level === level && rankAtLevel(score, latency, peerId, worst) >= 0) continue
    keepBest(best, { entry: entries[i] as BookEntry, peerId, level, score, latency }, limit, compareWalked)
  }
}

/**
 * The `n`th highest of the first `count` `values` (1 ≤ n ≤ count), or NaN when a NaN is among them
 * (then nothing scores below it, and `keepLevel` leaves nothing out).
 */
function nthHighest (values: readonly number[], count: number, n: number): number {
  const top: number[] = [] // the n highest so far, highest first
  for (let i = 0; i < count; i++) {
    const value = values[i] as number
    if (Number.isNaN(value)) return NaN
    if (top.length === n && value <= (top[n - 1] as number)) continue
    let at = Math.min(top.length, n - 1)
    while (at > 0 && value > (top[at - 1] as number)) at--
    top.splice(at, 0, value)
    if (top.length > n) top.pop()
  }
  return top[n - 1] as number
}

/** `compareRanked` for walked entries (price by level, no bigints). */
function compareWalked (a: Walked, b: Walked): number {
  if (a.level !== b.level) return a.level - b.level
  return rankAtLevel(a.score, a.latency, a.peerId, b)
}

/** `compareWalked` of a provider met at `b`'s price, given by its score, latency and peer id, to `b`. */
function rankAtLevel (score: number, latency: number, peerId: string, b: Walked): number {
  if (score !== b.score) return score > b.score ? -1 : 1
  if (latency !== b.latency) return latency < b.latency ? -1 : 1
  return peerId < b.peerId ? -1 : peerId > b.peerId ? 1 : 0
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
 * takes the lists of the order's classes, in the tiers that can have `gpuCount` free, a price at a time
 * (the cheapest head of any list, then every entry of every list at that price, classes in name order,
 * so a provider's first fitting entry met is its cheapest by `compareEntries`, up to which of two
 * equally priced kinds of one class it is, which the candidate does not show) until `limit` providers
 * are held at the end of a price.
 */
export function findCandidates (book: OrderBook, order: Order, options: MatchOptions): Candidate[] {
  const limit = Math.floor(options.limit)
  if (!(limit > 0)) return []
  const prepared = prepareOrder(order)
  if (prepared.unreadableComputeCapability) return []
  // A market or region no offer in the book names: nothing fits.
  const marketCode = book.marketCode(order.chainId, prepared.token)
  if (marketCode === undefined) return []
  const regionCode = order.requirements.region == null ? null : book.regionCode(order.requirements.region)
  if (regionCode === undefined) return []
  const maxPrice = order.maxPricePerGpuHour
  const now = options.now
  const minMemoryMiB = order.requirements.minMemoryMiB
  const minComputeCapability = prepared.minComputeCapability
  const { gpuCount, allowSimulated } = order.requirements
  const durationSec = order.durationSec
  const lists: WalkedList[] = []
  for (const summary of book.summaries(order.requirements.classes.length === 0 ? undefined : order.requirements.classes)) {
    const reach = summary.computeCapabilityReach(minComputeCapability)
    if (reach === 'none' || !summary.hasMemoryAtLeast(minMemoryMiB)) continue
    const checkComputeCapability = reach === 'some'
    const checkEntries = checkComputeCapability || prepared.escrow != null || prepared.operators != null
    for (const list of summary.lists(gpuCount)) lists.push({ list, checkComputeCapability, checkEntries, at: 0 })
  }
  /** Slots of the offers with several GPU kinds already met (one with a single kind cannot be met twice). */
  const seen = new Set<number>()
  const best: Walked[] = []
  const fits = new LevelFits()
  for (let level = 0; best.length < limit; level++) {
    // The price of this level: the cheapest head, as a number and (above 2^53) as its entry's bigint.
    let next: BookEntry | undefined
    let nextNumber = Infinity
    for (const { list, at } of lists) {
      if (at >= list.length) continue
      const head = list.priceNumber(at)
      if (next === undefined || head < nextNumber || (head === nextNumber && comparePrices(list.entry(at), next) < 0)) {
        next = list.entry(at)
        nextNumber = head
      }
    }
    if (next === undefined || next.price > maxPrice) break
    fits.count = 0
    for (const walked of lists) {
      const { list, checkComputeCapability, checkEntries } = walked
      let at = walked.at
      for (; at < list.length; at++) {
        const priceNumber = list.priceNumber(at)
        if (priceNumber !== nextNumber || (priceNumber > Number.MAX_SAFE_INTEGER && list.entry(at).price !== next.price)) break
        if (!list.fits(at, gpuCount, allowSimulated, minMemoryMiB, marketCode, regionCode, now, durationSec)) continue
        if (checkEntries && !fitsWalked(list.entry(at), prepared, checkComputeCapability)) continue
        if (list.kinds(at) > 1) {
          const slot = list.slot(at)
          if (seen.has(slot)) continue
          seen.add(slot)
        }
        const peerId = list.peerId(at)
        fits.add(list.entry(at), peerId, options.records.score(peerId))
      }
      walked.at = at
    }
    keepLevel(best, fits, level, options, limit)
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
