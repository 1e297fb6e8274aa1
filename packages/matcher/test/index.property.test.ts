import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { OrderBook, ProviderRecords, compareEntries, findCandidates, findCandidatesLinear, freeTier } from '@gpumesh/matcher'
import type { BookFilters, ListedOffer, MatchOptions } from '@gpumesh/matcher'
import type { Offer, OfferedGpus, Order } from '@gpumesh/protocol'
import { gpu, offer, order } from './helpers.js'

// The index's own invariants: free-GPU tiers, the numbers packed beside each entry, market and region
// codes and offer slots must follow every upsert, replacement, removal and prune. Small domains, so
// that tier boundaries, equal prices within an offer, codes given up and taken again, and classes
// whose GPUs only partly meet a compute capability all happen often.
const NOW = 100
const CLASSES = ['A100', 'H100', 'L4']
const TOKENS = ['0x00000000000000000000000000000000000000aa', '0x00000000000000000000000000000000000000AA', '0x00000000000000000000000000000000000000bb']
const REGIONS = [null, 'eu', 'us', 'ap']
const PEERS = Array.from({ length: 16 }, (_, i) => `peer-${String(i).padStart(2, '0')}`)
// Around 2^53, where numbers stop telling prices apart, and far above it.
const PRICE_BASES = [0n, 2n ** 53n - 2n, 2n ** 60n]

const gpuArb: fc.Arbitrary<OfferedGpus> = fc.record({
  class: fc.constantFrom(...CLASSES),
  memoryMiB: fc.constantFrom(24_576, 81_920),
  computeCapability: fc.constantFrom(null, '8.0', '8.9', '9.0'),
  countFree: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constantFrom(15, 16, 17, 40)),
  pricePerGpuHour: fc.bigInt({ min: 1n, max: 4n }),
  simulated: fc.constantFrom(false, false, false, true)
}).map((g) => gpu(g))

const offerArb = (priceBase: bigint): fc.Arbitrary<Offer> => fc.record({
  peerId: fc.constantFrom(...PEERS),
  // Several kinds, often of one class at one price (ties inside an offer).
  gpus: fc.oneof(
    fc.array(gpuArb, { minLength: 0, maxLength: 3 }),
    fc.tuple(gpuArb, fc.integer({ min: 0, max: 9 })).map(([g, countFree]) => [g, { ...g, countFree }])
  ),
  token: fc.constantFrom(...TOKENS),
  chainId: fc.constantFrom(1n, 1n, 2n, 2n ** 60n + 1n),
  region: fc.constantFrom(...REGIONS),
  minLeaseSec: fc.constantFrom(0, 3600),
  maxLeaseSec: fc.constantFrom(3600, 86_400),
  sequence: fc.integer({ min: 0, max: 5 }),
  expiresAt: fc.integer({ min: 95, max: 130 })
}).map((o) => offer(o.peerId, { ...o, gpus: o.gpus.map((g) => ({ ...g, pricePerGpuHour: g.pricePerGpuHour + priceBase })) }))

const orderArb = (priceBase: bigint): fc.Arbitrary<Order> => fc.record({
  requirements: fc.record({
    // Tier floors, counts between them, and counts no tier bounds from below.
    gpuCount: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.constantFrom(15, 16, 17, 41)),
    classes: fc.subarray(CLASSES),
    minMemoryMiB: fc.constantFrom(0, 0, 81_920),
    minComputeCapability: fc.constantFrom(null, null, '8.5', '9.0'),
    region: fc.constantFrom(null, null, 'eu', 'ap', 'nowhere'),
    allowSimulated: fc.boolean()
  }),
  maxPricePerGpuHour: fc.bigInt({ min: 0n, max: 5n }),
  durationSec: fc.constantFrom(60, 3600, 7200),
  token: fc.constantFrom(...TOKENS, '0x00000000000000000000000000000000000000cc'),
  chainId: fc.constantFrom(1n, 2n, 2n ** 60n + 1n)
}).map(({ requirements, ...o }) => order(requirements, { ...o, maxPricePerGpuHour: o.maxPricePerGpuHour + priceBase }))

type Op = { kind: 'upsert', offer: Offer } | { kind: 'remove', index: number } | { kind: 'prune', at: number }
const opsArb = (priceBase: bigint): fc.Arbitrary<Op[]> => fc.array(fc.oneof(
  { weight: 8, arbitrary: offerArb(priceBase).map((offer) => ({ kind: 'upsert' as const, offer })) },
  { weight: 2, arbitrary: fc.nat(PEERS.length - 1).map((index) => ({ kind: 'remove' as const, index })) },
  { weight: 1, arbitrary: fc.integer({ min: 95, max: 110 }).map((at) => ({ kind: 'prune' as const, at })) }
), { minLength: 5, maxLength: 80, size: 'max' })

function build (ops: Op[]): { book: OrderBook, model: Map<string, Offer> } {
  const book = new OrderBook()
  const model = new Map<string, Offer>()
  for (const op of ops) {
    if (op.kind === 'upsert') {
      if (book.upsert(op.offer, NOW - 5) !== 'stale') model.set(op.offer.peerId, op.offer)
    } else if (op.kind === 'remove') {
      const peerId = PEERS[op.index] as string
      book.remove(peerId)
      model.delete(peerId)
    } else {
      for (const peerId of book.prune(op.at)) model.delete(peerId)
    }
  }
  return { book, model }
}

/** `OrderBook.list` written out: each offer's cheapest kind passing the filters, by price then peer id. */
function naiveList (offers: Iterable<Offer>, filters: BookFilters, offset: number, limit: number, now: number): Array<[string, string, bigint]> {
  const listed: Array<[string, string, bigint]> = []
  for (const o of offers) {
    if (o.expiresAt <= now) continue
    const kinds = o.gpus.map((g, index) => ({ g, index })).filter(({ g }) =>
      (filters.class == null || g.class === filters.class) &&
      (!g.simulated || filters.includeSimulated === true) &&
      (filters.minMemoryMiB == null || g.memoryMiB >= filters.minMemoryMiB) &&
      (filters.minCount == null || g.countFree >= filters.minCount) &&
      (filters.maxPricePerGpuHour == null || g.pricePerGpuHour <= filters.maxPricePerGpuHour) &&
      (filters.region == null || o.region === filters.region))
      .sort((a, b) => a.g.pricePerGpuHour < b.g.pricePerGpuHour ? -1 : a.g.pricePerGpuHour > b.g.pricePerGpuHour ? 1
        : a.g.class < b.g.class ? -1 : a.g.class > b.g.class ? 1 : a.index - b.index)
    const cheapest = kinds[0]
    if (cheapest != null) listed.push([o.peerId, cheapest.g.class, cheapest.g.pricePerGpuHour])
  }
  listed.sort((a, b) => a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  return listed.slice(offset, offset + limit)
}

const filtersArb = (priceBase: bigint): fc.Arbitrary<BookFilters> => fc.record({
  class: fc.constantFrom(...CLASSES),
  minMemoryMiB: fc.constantFrom(24_576, 81_920),
  minCount: fc.integer({ min: 0, max: 17 }),
  maxPricePerGpuHour: fc.bigInt({ min: 0n, max: 5n }).map((p) => p + priceBase),
  region: fc.constantFrom('eu', 'us'),
  includeSimulated: fc.boolean()
}, { requiredKeys: [] })

describe('order book index', () => {
  it('the walk agrees with the plain scan after any upserts, replacements, removals and prunes', () => {
    fc.assert(fc.property(
      fc.constantFrom(...PRICE_BASES).chain((priceBase) => fc.tuple(opsArb(priceBase), fc.array(orderArb(priceBase), { minLength: 1, maxLength: 8 }))),
      fc.constantFrom(1, 2, 3, 5, 100),
      fc.array(fc.tuple(fc.nat(PEERS.length - 1), fc.boolean()), { maxLength: 20 }),
      fc.array(fc.tuple(fc.nat(PEERS.length - 1), fc.integer({ min: 1, max: 3 })), { maxLength: 8 }),
      ([ops, orders], limit, outcomes, latencies) => {
        const { book } = build(ops)
        const records = new ProviderRecords()
        for (const [i, good] of outcomes) {
          if (good) records.recordCompleted(PEERS[i] as string)
          else records.recordTimeout(PEERS[i] as string)
        }
        const latency = new Map(latencies.map(([i, ms]) => [PEERS[i] as string, ms]))
        const options: MatchOptions = { now: NOW, records, latency: (id) => latency.get(id), limit }
        for (const o of orders) expect(findCandidates(book, o, options)).toEqual(findCandidatesLinear(book, o, options))
      }
    ), { numRuns: 400 })
  })

  it('listing agrees with a plain listing under any filters', () => {
    fc.assert(fc.property(
      fc.constantFrom(...PRICE_BASES).chain((priceBase) => fc.tuple(opsArb(priceBase), filtersArb(priceBase))),
      fc.nat(4),
      fc.integer({ min: 1, max: 20 }),
      ([ops, filters], offset, limit) => {
        const { book, model } = build(ops)
        const listed = book.list({ filters, offset, limit, now: NOW }).map((l: ListedOffer): [string, string, bigint] => [l.peerId, l.gpuClass, l.pricePerGpuHour])
        expect(listed).toEqual(naiveList(model.values(), filters, offset, limit, NOW))
      }
    ), { numRuns: 300 })
  })

  it('keeps each list sorted, in its tier, and its packed numbers equal to its entries', () => {
    fc.assert(fc.property(
      fc.constantFrom(...PRICE_BASES).chain(opsArb),
      fc.record({
        gpuCount: fc.integer({ min: 0, max: 17 }),
        allowSimulated: fc.boolean(),
        minMemoryMiB: fc.constantFrom(0, 81_920),
        region: fc.constantFrom(null, 'eu', 'us'),
        now: fc.integer({ min: 95, max: 130 }),
        durationSec: fc.constantFrom(60, 3600, 7200)
      }),
      (ops, q) => {
        const { book, model } = build(ops)
        const met = new Map<string, number>()
        const slots = new Map<number, string>()
        for (const summary of book.summaries()) {
          summary.lists().forEach((list, tier) => {
            for (let at = 0; at < list.length; at++) {
              const entry = list.entry(at)
              const offer = entry.record.offer
              expect(model.get(entry.peerId)).toBe(offer)
              expect(entry.gpuClass).toBe(summary.gpuClass)
              expect(freeTier(entry.gpu.countFree)).toBe(tier)
              if (at > 0) expect(compareEntries(list.entry(at - 1), entry)).toBeLessThan(0)
              expect([list.priceNumber(at), list.peerId(at), list.kinds(at), list.slot(at)])
                .toEqual([Number(entry.price), entry.peerId, offer.gpus.length, entry.record.slot])
              expect(slots.get(entry.record.slot) ?? entry.peerId).toBe(entry.peerId)
              slots.set(entry.record.slot, entry.peerId)
              const market = book.marketCode(offer.chainId, offer.token) as number
              const region = q.region == null ? null : book.regionCode(q.region) ?? -1
              const fits = entry.gpu.countFree >= q.gpuCount && (!entry.gpu.simulated || q.allowSimulated) &&
                entry.gpu.memoryMiB >= q.minMemoryMiB && (q.region == null || offer.region === q.region) &&
                offer.expiresAt > q.now && q.durationSec >= offer.minLeaseSec && q.durationSec <= offer.maxLeaseSec
              expect(list.fits(at, q.gpuCount, q.allowSimulated, q.minMemoryMiB, market, region, q.now, q.durationSec)).toBe(fits)
              expect(list.fits(at, q.gpuCount, q.allowSimulated, q.minMemoryMiB, market + 0.5, region, q.now, q.durationSec)).toBe(false)
              met.set(entry.peerId, (met.get(entry.peerId) ?? 0) + 1)
            }
          })
        }
        // Every kind of every offer held, once.
        expect(met).toEqual(new Map([...model.values()].filter((o) => o.gpus.length > 0).map((o) => [o.peerId, o.gpus.length])))
      }
    ), { numRuns: 300 })
  })

  it('gives up a market or region code with the last offer that uses it', () => {
    const book = new OrderBook()
    book.upsert(offer('a', { token: '0x00000000000000000000000000000000000000AA', region: 'eu' }), NOW)
    book.upsert(offer('b', { token: '0x00000000000000000000000000000000000000aa', region: 'us' }), NOW)
    const market = book.marketCode(1n, '0x00000000000000000000000000000000000000Aa')
    expect(market).toBeDefined()
    expect(book.marketCode(2n, '0x00000000000000000000000000000000000000aa')).toBeUndefined()
    expect(book.regionCode('eu')).toBeDefined()
    expect(book.regionCode('eu')).not.toBe(book.regionCode('us'))
    // Replacing a's offer moves it to another region: eu has no offer left.
    book.upsert(offer('a', { sequence: 2, token: '0x00000000000000000000000000000000000000aa', region: 'us' }), NOW)
    expect(book.regionCode('eu')).toBeUndefined()
    expect(book.marketCode(1n, '0x00000000000000000000000000000000000000aa')).toBe(market)
    book.remove('a')
    book.remove('b')
    expect(book.marketCode(1n, '0x00000000000000000000000000000000000000aa')).toBeUndefined()
    expect(book.regionCode('us')).toBeUndefined()
    // An order in a market or region the book no longer has finds nothing (and the scan agrees).
    book.upsert(offer('c', { region: 'ap' }), NOW)
    const options: MatchOptions = { now: NOW, records: new ProviderRecords(), limit: 5 }
    expect(findCandidates(book, order({ region: 'eu' }), options)).toEqual([])
    expect(findCandidatesLinear(book, order({ region: 'eu' }), options)).toEqual([])
    expect(findCandidates(book, order({ region: 'ap' }), options).map((c) => c.peerId)).toEqual(['c'])
  })

  it('puts free GPU counts into tiers whose floors an order for that many can skip below', () => {
    expect([0, 1, 2, 3, 4, 7, 8, 9, 1_000].map(freeTier)).toEqual([0, 1, 2, 2, 3, 3, 4, 4, 4])
    // Anything that is not a count of at least one leaves no tier out.
    expect([-1, 0.5, Number.NaN].map(freeTier)).toEqual([0, 0, 0])
    expect(freeTier(1.5)).toBe(1)
  })
})
