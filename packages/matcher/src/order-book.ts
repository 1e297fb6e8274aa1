/**
 * The order book: the newest validated offer of each provider, indexed for matching.
 *
 * Index: for every GPU class, the offered GPU kinds of that class ("entries", one per element of
 * `offer.gpus`), split by how many GPUs are free (`FREE_TIERS`: none, 1, 2–3, 4–7, 8 or more), each tier
 * an `EntryList` sorted by (price, peer id, position in the offer). An order for n GPUs walks only the
 * tiers that can hold n free, so an order for 8 does not step over every single free GPU. Upserts and
 * removals keep the lists sorted incrementally (binary search, then one shift), so a match never sorts.
 * Beside each list's entries, the numbers a walk checks (price, free GPUs, memory, market, region,
 * expiry, lease bounds, …) sit side by side in one typed array, so rejecting an entry reads a few
 * consecutive numbers and no object; the market (chain and token) and the region are small numbers
 * the book gives out (`marketCode`, `regionCode`), compared instead of strings. Matching walks the
 * lists a price at a time (`summaries()` gives the classes in name order); listing merges them by
 * price with a small heap (`PriceCursor`); either way entries come cheapest first and a walk can stop as
 * soon as it has enough. Prices are compared as numbers (`priceNumber`) and as bigints only above 2^53.
 * Each class also counts its entries by memory size and compute capability (`ClassSummary`), so a walk
 * can leave out a whole class in which no GPU could meet an order's minimums.
 *
 * Signatures and schema are checked before an offer gets here; the book trusts its input.
 */
import type { Offer, OfferedGpus } from '@gpumesh/protocol'

/** `stale`: the book already holds a sequence at least as high, or the offer has expired at `now`. */
export type UpsertResult = 'added' | 'replaced' | 'stale'

/** One offered GPU kind of one offer, as held in its class's price-sorted array. */
export interface BookEntry {
  readonly peerId: string
  /** `record.entries.length`: a walk meets an offer with one GPU kind at most once. */
  readonly kinds: number
  /**
   * `Number(price)`: exact up to 2^53, and never out of order (a smaller number is a smaller price,
   * equal prices have equal numbers), so walks compare numbers and fall back to bigints only for
   * prices above 2^53 that round alike (see `comparePrices`).
   */
  readonly priceNumber: number
  readonly price: bigint
  readonly record: BookRecord
  /** `gpu.computeCapability` parsed, or null when absent or unreadable. */
  readonly computeCapability: readonly number[] | null
  readonly gpuClass: string
  /** Position in `offer.gpus`. */
  readonly gpuIndex: number
  readonly gpu: OfferedGpus
  /** `freeTier(gpu.countFree)`: which of its class's lists holds the entry. */
  readonly freeTier: number
}

/** An offer with what the matcher derives from it once, at insertion. */
export interface BookRecord {
  readonly offer: Offer
  /** `offer.token` in lower case. */
  readonly token: string
  /** The book's code for the offer's chain and token (`OrderBook.marketCode`). */
  readonly marketCode: number
  /** The book's code for `offer.region` (`OrderBook.regionCode`); `NO_REGION` without one. */
  readonly regionCode: number
  /** `offer.escrow` in lower case. */
  readonly escrow: string
  /** `offer.fleet.operator` in lower case, or null without a fleet. */
  readonly operator: string | null
  readonly entries: readonly BookEntry[]
  /**
   * A small number no other offer in the book holds (taken again once this one leaves), by which a
   * walk remembers the offers it has met without hashing peer ids.
   */
  readonly slot: number
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

/** The region code of an offer that names no region. */
export const NO_REGION = 0

/**
 * Small numbers standing for strings that many offers share (their market, their region), so that a
 * walk compares numbers rather than strings. A code lives while some offer in the book uses it, and is
 * never given to another string.
 */
class SharedCodes {
  private readonly byValue = new Map<string, { code: number, uses: number }>()
  private nextCode = NO_REGION + 1

  /** The code of `value`, or undefined when no offer in the book uses it. */
  get (value: string): number | undefined {
    return this.byValue.get(value)?.code
  }

  /** The code of `value`, counting one more use. */
  acquire (value: string): number {
    let held = this.byValue.get(value)
    if (held == null) {
      held = { code: this.nextCode++, uses: 0 }
      this.byValue.set(value, held)
    }
    held.uses++
    return held.code
  }

  /** Counts one use less; the code is forgotten with its last use. */
  release (value: string): void {
    const held = this.byValue.get(value)
    if (held != null && --held.uses === 0) this.byValue.delete(value)
  }
}

/** The key of a market: a chain and a lower-cased token. */
function marketKey (chainId: bigint, token: string): string {
  return `${chainId}/${token}`
}

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

/** Where `EntryList` keeps each number of an entry, and how many it keeps (`FIELDS`). */
const PRICE = 0
const COUNT_FREE = 1
const SIMULATED = 2
const MEMORY = 3
const REGION = 4
const MARKET = 5
const EXPIRES_AT = 6
const MIN_LEASE = 7
const MAX_LEASE = 8
const KINDS = 9
const SLOT = 10
const FIELDS = 11

/**
 * Entries in class order (price, peer id, position in the offer), with the numbers a walk checks for
 * each — price, free GPUs, simulated, memory, region and market codes, expiry, lease bounds, kinds —
 * copied side by side into one Float64Array, and the peer ids into an array beside it. A walk reads
 * consecutive memory, not one object (scattered over the heap) per entry visited.
 */
export class EntryList {
  private readonly items: BookEntry[] = []
  private readonly peerIds: string[] = []
  private numbers = new Float64Array(FIELDS * 16)

  get length (): number {
    return this.items.length
  }

  /** The entries in order; changed only through `add` and `delete`. */
  get entries (): readonly BookEntry[] {
    return this.items
  }

  entry (at: number): BookEntry {
    return this.items[at] as BookEntry
  }

  /** `entry(at).peerId`. */
  peerId (at: number): string {
    return this.peerIds[at] as string
  }

  /** `entry(at).kinds`. */
  kinds (at: number): number {
    return this.numbers[at * FIELDS + KINDS] as number
  }

  /** `entry(at).record.slot`. */
  slot (at: number): number {
    return this.numbers[at * FIELDS + SLOT] as number
  }

  /** `entry(at).priceNumber`. */
  priceNumber (at: number): number {
    return this.numbers[at * FIELDS + PRICE] as number
  }

  /**
   * Whether the entry at `at` passes the checks on its numbers: at least `gpuCount` free GPUs, not
   * simulated unless allowed, at least `minMemoryMiB`, in the market `marketCode` and the region
   * `regionCode` (any when null), not expired at `now`, and taking a lease of `durationSec`.
   */
  fits (at: number, gpuCount: number, allowSimulated: boolean, minMemoryMiB: number, marketCode: number,
    regionCode: number | null, now: number, durationSec: number): boolean {
    const n = this.numbers
    const base = at * FIELDS
    return !((n[base + COUNT_FREE] as number) < gpuCount) &&
      (allowSimulated || n[base + SIMULATED] === 0) &&
      !((n[base + MEMORY] as number) < minMemoryMiB) &&
      (regionCode == null || n[base + REGION] === regionCode) &&
      n[base + MARKET] === marketCode &&
      !((n[base + EXPIRES_AT] as number) <= now) &&
      !(durationSec < (n[base + MIN_LEASE] as number) || durationSec > (n[base + MAX_LEASE] as number))
  }

  /** Inserts in order (binary search, then one shift of the entries after it). */
  add (entry: BookEntry): void {
    const at = lowerBound(this.items, entry)
    const length = this.items.length
    if ((length + 1) * FIELDS > this.numbers.length) {
      const grown = new Float64Array(this.numbers.length * 2)
      grown.set(this.numbers)
      this.numbers = grown
    }
    this.items.splice(at, 0, entry)
    this.peerIds.splice(at, 0, entry.peerId)
    this.numbers.copyWithin((at + 1) * FIELDS, at * FIELDS, length * FIELDS)
    const { gpu, record } = entry
    const offer = record.offer
    const base = at * FIELDS
    this.numbers[base + PRICE] = entry.priceNumber
    this.numbers[base + COUNT_FREE] = gpu.countFree
    this.numbers[base + SIMULATED] = gpu.simulated ? 1 : 0
    this.numbers[base + MEMORY] = gpu.memoryMiB
    this.numbers[base + REGION] = record.regionCode
    this.numbers[base + MARKET] = record.marketCode
    this.numbers[base + EXPIRES_AT] = offer.expiresAt
    this.numbers[base + MIN_LEASE] = offer.minLeaseSec
    this.numbers[base + MAX_LEASE] = offer.maxLeaseSec
    this.numbers[base + KINDS] = entry.kinds
    this.numbers[base + SLOT] = record.slot
  }

  /** Removes that very entry; false when it is not held. */
  delete (entry: BookEntry): boolean {
    const at = lowerBound(this.items, entry)
    if (this.items[at] !== entry) return false
    this.items.splice(at, 1)
    this.peerIds.splice(at, 1)
    this.numbers.copyWithin(at * FIELDS, (at + 1) * FIELDS, (this.items.length + 1) * FIELDS)
    return true
  }
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
 * Free-GPU tiers: tier `t` holds the entries with `FREE_TIERS[t] <= countFree < FREE_TIERS[t + 1]`
 * (the last tier has no upper bound). Tier 0 (no free GPU) fits no order.
 */
const FREE_TIERS = [0, 1, 2, 4, 8] as const

/**
 * The tier of an entry with `count` free GPUs; for an order's GPU count, the lowest tier that can hold
 * an entry with that many free (every lower tier holds fewer). Anything that is not a number at least
 * 1 (NaN, 0, negative) gives tier 0, so a walk for such a count leaves out no tier.
 */
export function freeTier (count: number): number {
  let tier = FREE_TIERS.length - 1
  while (tier > 0 && !(count >= (FREE_TIERS[tier] as number))) tier--
  return tier
}

/**
 * One class's entries, each tier (`FREE_TIERS`) in its own price-sorted array, with counts of the
 * memory sizes and compute capabilities they offer (a class holds few distinct values, so these stay
 * small).
 */
export class ClassSummary {
  readonly gpuClass: string
  private readonly tiers: EntryList[] = FREE_TIERS.map(() => new EntryList())
  private count = 0
  private readonly memory = new Map<number, number>()
  /** Keyed by the capability text; the value keeps the parsed form beside the count. */
  private readonly computeCapabilities = new Map<string | null, { parsed: readonly number[] | null, count: number }>()

  constructor (gpuClass: string) {
    this.gpuClass = gpuClass
  }

  get size (): number {
    return this.count
  }

  /**
   * The price-sorted arrays of the tiers whose entries may have at least `minFree` free GPUs (all
   * tiers when omitted), lowest tier first; changed only through the book.
   */
  lists (minFree?: number): readonly EntryList[] {
    return minFree == null ? this.tiers : this.tiers.slice(freeTier(minFree))
  }

  /** Whether some entry has at least `minMiB` of memory. */
  hasMemoryAtLeast (minMiB: number): boolean {
    for (const memoryMiB of this.memory.keys()) if (memoryMiB >= minMiB) return true
    return false
  }

  /**
   * Which of the class's entries have at least this compute capability: `all` (also when `min` is
   * null), `none`, or `some` (then each entry must be checked).
   */
  computeCapabilityReach (min: readonly number[] | null): 'all' | 'some' | 'none' {
    if (min == null) return 'all'
    let meet = 0
    for (const { parsed, count } of this.computeCapabilities.values()) {
      if (parsed != null && compareComputeCapability(parsed, min) >= 0) meet += count
    }
    return meet === 0 ? 'none' : meet === this.count ? 'all' : 'some'
  }

  /** Inserts in price order into its tier (binary search, one splice). Used by `OrderBook` only. */
  add (entry: BookEntry): void {
    ;(this.tiers[entry.freeTier] as EntryList).add(entry)
    this.count++
    this.memory.set(entry.gpu.memoryMiB, (this.memory.get(entry.gpu.memoryMiB) ?? 0) + 1)
    const key = entry.gpu.computeCapability
    const cc = this.computeCapabilities.get(key)
    if (cc == null) this.computeCapabilities.set(key, { parsed: entry.computeCapability, count: 1 })
    else cc.count++
  }

  /** Removes that very entry; false when it is not held. Used by `OrderBook` only. */
  delete (entry: BookEntry): boolean {
    if (!(this.tiers[entry.freeTier] as EntryList).delete(entry)) return false
    this.count--
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
  private readonly markets = new SharedCodes()
  private readonly regions = new SharedCodes()
  /** Slots of offers that left the book, to give again; `nextSlot` when there is none. */
  private readonly freeSlots: number[] = []
  private nextSlot = 0
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

  /**
   * The code entries carry for this chain and token (any case), or undefined when no offer in the book
   * is in that market.
   */
  marketCode (chainId: bigint, token: string): number | undefined {
    return this.markets.get(marketKey(chainId, token.toLowerCase()))
  }

  /** The code entries carry for this region, or undefined when no offer in the book names it. */
  regionCode (region: string): number | undefined {
    return this.regions.get(region)
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
   * `include`, when given, leaves out classes for which it returns false; `minFree` leaves out the
   * tiers in which no entry has that many free GPUs (not every entry left in has: check `countFree`).
   */
  cursor (classes?: readonly string[], include?: (summary: ClassSummary) => boolean, minFree?: number): PriceCursor {
    const summaries = classes == null
      ? [...this.byClass.values()]
      : [...new Set(classes)].map((gpuClass) => this.byClass.get(gpuClass)).filter((s) => s != null)
    const lists: Array<readonly BookEntry[]> = []
    for (const summary of summaries) {
      if (include == null || include(summary)) for (const list of summary.lists(minFree)) lists.push(list.entries)
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
    const cursor = this.cursor(filters.class == null ? undefined : [filters.class], undefined, filters.minCount)
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
    const token = offer.token.toLowerCase()
    const record: BookRecord = {
      offer,
      token,
      marketCode: this.markets.acquire(marketKey(offer.chainId, token)),
      regionCode: offer.region == null ? NO_REGION : this.regions.acquire(offer.region),
      escrow: offer.escrow.toLowerCase(),
      operator: offer.fleet == null ? null : offer.fleet.operator.toLowerCase(),
      entries,
      slot: this.freeSlots.pop() ?? this.nextSlot++
    }
    offer.gpus.forEach((gpu, gpuIndex) => {
      entries.push({
        peerId: offer.peerId,
        kinds: offer.gpus.length,
        priceNumber: Number(gpu.pricePerGpuHour),
        price: gpu.pricePerGpuHour,
        record,
        computeCapability: parseComputeCapability(gpu.computeCapability),
        gpuClass: gpu.class,
        gpuIndex,
        gpu,
        freeTier: freeTier(gpu.countFree)
      })
    })
    return record
  }

  private unindex (record: BookRecord): void {
    this.freeSlots.push(record.slot)
    this.markets.release(marketKey(record.offer.chainId, record.token))
    if (record.offer.region != null) this.regions.release(record.offer.region)
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
