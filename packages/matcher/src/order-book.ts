/**
 * The order book: the newest validated offer of each provider, indexed for matching.
 *
 * Index: for every GPU class, the offered GPU kinds of that class ("entries", one per element of
 * `offer.gpus`) in an array sorted by (price, peer id, position in the offer). Upserts and removals keep
 * the arrays sorted incrementally (binary search, then one splice), so a match never sorts. Matching
 * walks the classes a price at a time (`summaries()` gives them in name order); listing merges them by
 * price with a small heap (`PriceCursor`); either way entries come cheapest first and a walk can stop as
 * soon as it has enough. Entries carry copies of the fields matching checks (and a number beside the
 * bigint price), so rejecting one reads one object and no bigint. Each class also counts its entries by
 * memory size and compute capability (`ClassSummary`), so a walk can leave out a whole class in which
 * no GPU could meet an order's minimums instead of stepping through all of it.
 *
 * Signatures and schema are checked before an offer gets here; the book trusts its input.
 */
import type { Offer, OfferedGpus } from '@gpumesh/protocol'

/** `stale`: the book already holds a sequence at least as high, or the offer has expired at `now`. */
export type UpsertResult = 'added' | 'replaced' | 'stale'

/** One offered GPU kind of one offer, as held in its class's price-sorted array. */
export interface BookEntry {
  readonly price: bigint
  /**
   * `Number(price)`: exact up to 2^53, and never out of order (a smaller number is a smaller price,
   * equal prices have equal numbers), so walks compare numbers and fall back to bigints only for
   * prices above 2^53 that round alike (see `comparePrices`).
   */
  readonly priceNumber: number
  readonly peerId: string
  readonly gpuClass: string
  /** Position in `offer.gpus`. */
  readonly gpuIndex: number
  readonly gpu: OfferedGpus
  /** `gpu.computeCapability` parsed, or null when absent or unreadable. */
  readonly computeCapability: readonly number[] | null
  readonly record: BookRecord
  // Copies of the fields matching checks most often (of `gpu`, `record` and its offer), held on the
  // entry itself so that a walk rejecting an entry reads one object, not four.
  readonly countFree: number
  readonly simulated: boolean
  readonly memoryMiB: number
  readonly region: string | null
  readonly expiresAt: number
  readonly minLeaseSec: number
  readonly maxLeaseSec: number
  /** `record.token`. */
  readonly token: string
  /** `record.chainIdNumber`. */
  readonly chainIdNumber: number
}

/** An offer with what the matcher derives from it once, at insertion. */
export interface BookRecord {
  readonly offer: Offer
  /** `offer.token` in lower case. */
  readonly token: string
  /** `Number(offer.chainId)`; compared before the bigint, which is needed only above 2^53. */
  readonly chainIdNumber: number
  /** `offer.escrow` in lower case. */
  readonly escrow: string
  /** `offer.fleet.operator` in lower case, or null without a fleet. */
  readonly operator: string | null
  readonly entries: readonly BookEntry[]
}

/** Filters for serving the book; every one given must hold for one GPU kind of the offer. */
export interface BookFilters {
  class?: string
  minMemoryMiB?: number
  /** Least number of free GPUs of the kind. */
  minCount?: number
  maxPricePerGpuHour?: bigint
  region?: string
  /** Fleet operator address, case-insensitive. */
  operator?: string
  /** Simulated GPUs are left out unless true. */
  includeSimulated?: boolean
}

export interface ListOptions {
  filters?: BookFilters
  offset?: number
  /** Default `DEFAULT_LIST_LIMIT`. */
  limit?: number
  /** When given, offers expired at this time are left out. */
  now?: number
}

/** An offer as listed: with its cheapest GPU kind that passed the filters. */
export interface ListedOffer {
  peerId: string
  offer: Offer
  gpuClass: string
  pricePerGpuHour: bigint
}

export const DEFAULT_LIST_LIMIT = 100

const COMPUTE_CAPABILITY = /^\d+(?:\.\d+)*$/

/** "8.9" → [8, 9]; null for null or anything that is not dot-separated digits. */
export function parseComputeCapability (text: string | null): number[] | null {
  if (text == null || !COMPUTE_CAPABILITY.test(text)) return null
  return text.split('.').map(Number)
}

/** Numeric, component by component, missing components read as 0: 8.9 < 9.0 = 9 < 10.0. */
export function compareComputeCapability (a: readonly number[], b: readonly number[]): number {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d < 0 ? -1 : 1
  }
  return 0
}

function compareStrings (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** By price alone; bigint arithmetic only where both prices are above 2^53 and round to one number. */
export function comparePrices (a: BookEntry, b: BookEntry): number {
  if (a.priceNumber !== b.priceNumber) return a.priceNumber < b.priceNumber ? -1 : 1
  if (a.priceNumber <= Number.MAX_SAFE_INTEGER || a.price === b.price) return 0
  return a.price < b.price ? -1 : 1
}

/** Order inside one class: price, then peer id, then position in the offer. */
function compareInClass (a: BookEntry, b: BookEntry): number {
  const byPrice = comparePrices(a, b)
  if (byPrice !== 0) return byPrice
  if (a.peerId !== b.peerId) return a.peerId < b.peerId ? -1 : 1
  return a.gpuIndex - b.gpuIndex
}

/**
 * The total order every walk follows: price, then peer id, then class, then position in the offer.
 * The first entry of a provider a walk meets is therefore that provider's cheapest (ties: class name).
 */
export function compareEntries (a: BookEntry, b: BookEntry): number {
  const byPrice = comparePrices(a, b)
  if (byPrice !== 0) return byPrice
  if (a.peerId !== b.peerId) return a.peerId < b.peerId ? -1 : 1
  if (a.gpuClass !== b.gpuClass) return compareStrings(a.gpuClass, b.gpuClass)
  return a.gpuIndex - b.gpuIndex
}

/** First index in `list` whose entry is not below `entry` (in class order). */
function lowerBound (list: readonly BookEntry[], entry: BookEntry): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareInClass(list[mid] as BookEntry, entry) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * Entries of some classes in `compareEntries` order (a k-way merge of the classes' sorted arrays).
 * Valid only while the book is not changed; walks are synchronous.
 */
export class PriceCursor {
  private readonly lists: ReadonlyArray<readonly BookEntry[]>
  private readonly positions: number[]
  /** Indices into `lists`, a binary min-heap on each list's current head. */
  private readonly heap: number[]

  constructor (lists: ReadonlyArray<readonly BookEntry[]>) {
    this.lists = lists.filter((list) => list.length > 0)
    this.positions = this.lists.map(() => 0)
    this.heap = []
    for (let i = 0; i < this.lists.length; i++) this.push(i)
  }

  /** The next entry, or undefined when all are walked. */
  next (): BookEntry | undefined {
    const heap = this.heap
    if (heap.length === 0) return undefined
    const top = heap[0] as number
    const list = this.lists[top] as readonly BookEntry[]
    const position = this.positions[top] as number
    const entry = list[position]
    this.positions[top] = position + 1
    if (position + 1 >= list.length) {
      const last = heap.pop() as number
      if (heap.length > 0) {
        heap[0] = last
        this.siftDown(0)
      }
    } else if (heap.length > 1) {
      this.siftDown(0)
    }
    return entry
  }

  private head (listIndex: number): BookEntry {
    return (this.lists[listIndex] as readonly BookEntry[])[this.positions[listIndex] as number] as BookEntry
  }

  private less (a: number, b: number): boolean {
    return compareEntries(this.head(a), this.head(b)) < 0
  }

  private push (listIndex: number): void {
    const heap = this.heap
    heap.push(listIndex)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(heap[i] as number, heap[parent] as number)) break
      ;[heap[i], heap[parent]] = [heap[parent] as number, heap[i] as number]
      i = parent
    }
  }

  private siftDown (start: number): void {
    const heap = this.heap
    let i = start
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < heap.length && this.less(heap[left] as number, heap[smallest] as number)) smallest = left
      if (right < heap.length && this.less(heap[right] as number, heap[smallest] as number)) smallest = right
      if (smallest === i) return
      ;[heap[i], heap[smallest]] = [heap[smallest] as number, heap[i] as number]
      i = smallest
    }
  }
}

/**
 * One class's entries, price-sorted, with counts of the memory sizes and compute capabilities they
 * offer (a class holds few distinct values, so these stay small).
 */
export class ClassSummary {
  readonly gpuClass: string
  private readonly sorted: BookEntry[] = []
  private readonly memory = new Map<number, number>()
  /** Keyed by the capability text; the value keeps the parsed form beside the count. */
  private readonly computeCapabilities = new Map<string | null, { parsed: readonly number[] | null, count: number }>()

  constructor (gpuClass: string) {
    this.gpuClass = gpuClass
  }

  get size (): number {
    return this.sorted.length
  }

  /** The class's entries in price order; changed only through the book. */
  get entries (): readonly BookEntry[] {
    return this.sorted
  }

  /** Whether some entry has at least `minMiB` of memory. */
  hasMemoryAtLeast (minMiB: number): boolean {
    for (const memoryMiB of this.memory.keys()) if (memoryMiB >= minMiB) return true
    return false
  }

  /** Whether some entry has at least this compute capability (any entry when `min` is null). */
  hasComputeCapabilityAtLeast (min: readonly number[] | null): boolean {
    if (min == null) return this.sorted.length > 0
    for (const { parsed } of this.computeCapabilities.values()) {
      if (parsed != null && compareComputeCapability(parsed, min) >= 0) return true
    }
    return false
  }

  /** Inserts in price order (binary search, one splice). Used by `OrderBook` only. */
  add (entry: BookEntry): void {
    this.sorted.splice(lowerBound(this.sorted, entry), 0, entry)
    this.memory.set(entry.gpu.memoryMiB, (this.memory.get(entry.gpu.memoryMiB) ?? 0) + 1)
    const key = entry.gpu.computeCapability
    const cc = this.computeCapabilities.get(key)
    if (cc == null) this.computeCapabilities.set(key, { parsed: entry.computeCapability, count: 1 })
    else cc.count++
  }

  /** Removes that very entry; false when it is not held. Used by `OrderBook` only. */
  delete (entry: BookEntry): boolean {
    const at = lowerBound(this.sorted, entry)
    if (this.sorted[at] !== entry) return false
    this.sorted.splice(at, 1)
    const memory = (this.memory.get(entry.gpu.memoryMiB) ?? 1) - 1
    if (memory === 0) this.memory.delete(entry.gpu.memoryMiB)
    else this.memory.set(entry.gpu.memoryMiB, memory)
    const cc = this.computeCapabilities.get(entry.gpu.computeCapability)
    if (cc != null && --cc.count === 0) this.computeCapabilities.delete(entry.gpu.computeCapability)
    return true
  }
}

export class OrderBook {
  private readonly byPeer = new Map<string, BookRecord>()
  private readonly byClass = new Map<string, ClassSummary>()
  /** Every summary in class-name order; dropped whenever a class appears or disappears. */
  private sortedSummaries: ClassSummary[] | null = null

  /** Number of offers (providers) in the book. */
  get size (): number {
    return this.byPeer.size
  }

  /**
   * Keeps `offer` if it is the provider's newest: `added` for a new provider, `replaced` when its
   * sequence is higher than the held one, `stale` (book unchanged) when it is not higher or when the
   * offer has already expired at `now`.
   */
  upsert (offer: Offer, now: number): UpsertResult {
    const held = this.byPeer.get(offer.peerId)
    if (held != null && offer.sequence <= held.offer.sequence) return 'stale'
    if (offer.expiresAt <= now) return 'stale'
    if (held != null) this.unindex(held)
    const record = this.makeRecord(offer)
    this.byPeer.set(offer.peerId, record)
    for (const entry of record.entries) {
      let summary = this.byClass.get(entry.gpuClass)
      if (summary == null) {
        summary = new ClassSummary(entry.gpuClass)
        this.byClass.set(entry.gpuClass, summary)
        this.sortedSummaries = null
      }
      summary.add(entry)
    }
    return held == null ? 'added' : 'replaced'
  }

  /** Drops the provider's offer; false when it had none. */
  remove (peerId: string): boolean {
    const record = this.byPeer.get(peerId)
    if (record == null) return false
    this.unindex(record)
    this.byPeer.delete(peerId)
    return true
  }

  /** Drops every offer with `expiresAt <= now` and returns their peer ids. */
  prune (now: number): string[] {
    const expired: string[] = []
    for (const [peerId, record] of this.byPeer) {
      if (record.offer.expiresAt <= now) expired.push(peerId)
    }
    for (const peerId of expired) this.remove(peerId)
    return expired
  }

  get (peerId: string): Offer | undefined {
    return this.byPeer.get(peerId)?.offer
  }

  has (peerId: string): boolean {
    return this.byPeer.has(peerId)
  }

  /** Every offer, in no particular order. */
  * offers (): IterableIterator<Offer> {
    for (const record of this.byPeer.values()) yield record.offer
  }

  /** Every offer with its derived fields, in no particular order (for scans and explanations). */
  records (): IterableIterator<BookRecord> {
    return this.byPeer.values()
  }

  /** GPU classes with at least one entry. */
  classes (): string[] {
    return [...this.byClass.keys()]
  }

  /**
   * The summaries of the given classes (all when omitted; unknown classes left out, duplicates once),
   * in class-name order, leaving out those for which `include` returns false. A walk that takes the
   * classes in this order at each price meets a provider's entries in `compareEntries` order.
   */
  summaries (classes?: readonly string[], include?: (summary: ClassSummary) => boolean): ClassSummary[] {
    let summaries: ClassSummary[]
    if (classes == null) {
      this.sortedSummaries ??= [...this.byClass.values()].sort((a, b) => compareStrings(a.gpuClass, b.gpuClass))
      summaries = this.sortedSummaries
    } else {
      summaries = []
      for (const gpuClass of classes) {
        const summary = this.byClass.get(gpuClass)
        if (summary != null && !summaries.includes(summary)) summaries.push(summary)
      }
      if (summaries.length > 1) summaries.sort((a, b) => compareStrings(a.gpuClass, b.gpuClass))
    }
    return include == null ? summaries : summaries.filter(include)
  }

  /**
   * Entries of the given classes (all when omitted), cheapest first, in `compareEntries` order.
   * `include`, when given, leaves out classes for which it returns false.
   */
  cursor (classes?: readonly string[], include?: (summary: ClassSummary) => boolean): PriceCursor {
    const summaries = classes == null
      ? [...this.byClass.values()]
      : [...new Set(classes)].map((gpuClass) => this.byClass.get(gpuClass)).filter((s) => s != null)
    const lists: Array<readonly BookEntry[]> = []
    for (const summary of summaries) {
      if (include == null || include(summary)) lists.push(summary.entries)
    }
    return new PriceCursor(lists)
  }

  /**
   * A page of the book, ordered by price (of each offer's cheapest GPU kind that passes the filters)
   * and then peer id. Walks the price index, so a page costs about offset + limit entries, plus the
   * entries the filters skip.
   */
  list (options: ListOptions = {}): Array<ListedOffer> {
    const filters = options.filters ?? {}
    const offset = Math.max(0, options.offset ?? 0)
    const limit = Math.max(0, options.limit ?? DEFAULT_LIST_LIMIT)
    const page: Array<ListedOffer> = []
    if (limit === 0) return page
    const operator = filters.operator?.toLowerCase()
    const seen = new Set<string>()
    let skipped = 0
    const cursor = this.cursor(filters.class == null ? undefined : [filters.class])
    for (let entry = cursor.next(); entry != null; entry = cursor.next()) {
      if (filters.maxPricePerGpuHour != null && entry.price > filters.maxPricePerGpuHour) break
      if (seen.has(entry.peerId)) continue
      const { gpu, record } = entry
      const offer = record.offer
      if (options.now != null && offer.expiresAt <= options.now) continue
      if (gpu.simulated && filters.includeSimulated !== true) continue
      if (filters.minMemoryMiB != null && gpu.memoryMiB < filters.minMemoryMiB) continue
      if (filters.minCount != null && gpu.countFree < filters.minCount) continue
      if (filters.region != null && offer.region !== filters.region) continue
      if (operator != null && record.operator !== operator) continue
      seen.add(entry.peerId)
      if (skipped < offset) {
        skipped++
        continue
      }
      page.push({ peerId: entry.peerId, offer, gpuClass: entry.gpuClass, pricePerGpuHour: entry.price })
      if (page.length >= limit) break
    }
    return page
  }

  private makeRecord (offer: Offer): BookRecord {
    const entries: BookEntry[] = []
    const record: BookRecord = {
      offer,
      token: offer.token.toLowerCase(),
      chainIdNumber: Number(offer.chainId),
      escrow: offer.escrow.toLowerCase(),
      operator: offer.fleet == null ? null : offer.fleet.operator.toLowerCase(),
      entries
    }
    offer.gpus.forEach((gpu, gpuIndex) => {
      entries.push({
        price: gpu.pricePerGpuHour,
        priceNumber: Number(gpu.pricePerGpuHour),
        peerId: offer.peerId,
        gpuClass: gpu.class,
        gpuIndex,
        gpu,
        computeCapability: parseComputeCapability(gpu.computeCapability),
        record,
        countFree: gpu.countFree,
        simulated: gpu.simulated,
        memoryMiB: gpu.memoryMiB,
        region: offer.region,
        expiresAt: offer.expiresAt,
        minLeaseSec: offer.minLeaseSec,
        maxLeaseSec: offer.maxLeaseSec,
        token: record.token,
        chainIdNumber: record.chainIdNumber
      })
    })
    return record
  }

  private unindex (record: BookRecord): void {
    for (const entry of record.entries) {
      const summary = this.byClass.get(entry.gpuClass)
      if (summary == null) continue
      summary.delete(entry)
      if (summary.size === 0) {
        this.byClass.delete(entry.gpuClass)
        this.sortedSummaries = null
      }
    }
  }
}
