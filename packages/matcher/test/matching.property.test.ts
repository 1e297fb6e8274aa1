import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { OrderBook, ProviderRecords, explainNoMatch, findCandidates, findCandidatesLinear } from '@gpumesh/matcher'
import type { Candidate, MatchOptions } from '@gpumesh/matcher'
import type { Offer, OfferedGpus, Order } from '@gpumesh/protocol'
import { gpu, offer, order } from './helpers.js'

// Small domains so that ties, replacements and every filter outcome happen often.
const NOW = 100
const TOKENS = ['0x00000000000000000000000000000000000000aa', '0x00000000000000000000000000000000000000AA', '0x00000000000000000000000000000000000000bb']
const OPERATORS = ['0x00000000000000000000000000000000000000C1', '0x00000000000000000000000000000000000000c1', '0x00000000000000000000000000000000000000c2']
const CLASSES = ['A100', 'H100', 'L4', 'MI300X']
const CCS = [null, '7.5', '8.0', '8.9', '9', '9.0', '10.0']

const gpuArb: fc.Arbitrary<OfferedGpus> = fc.record({
  class: fc.constantFrom(...CLASSES),
  memoryMiB: fc.constantFrom(16_384, 24_576, 40_960, 81_920),
  computeCapability: fc.constantFrom(...CCS),
  countFree: fc.integer({ min: 0, max: 8 }),
  pricePerGpuHour: fc.bigInt({ min: 1n, max: 4n }),
  simulated: fc.constantFrom(false, false, false, false, true)
}).map((g) => gpu(g))

const offerArb: fc.Arbitrary<Offer> = fc.record({
  peerId: fc.constantFrom(...Array.from({ length: 24 }, (_, i) => `peer-${String(i).padStart(2, '0')}`)),
  fleet: fc.option(fc.constantFrom(...OPERATORS).map((operator) => ({ operator })), { nil: null }),
  gpus: fc.array(gpuArb, { minLength: 0, maxLength: 3 }),
  token: fc.constantFrom(TOKENS[0] as string, TOKENS[0] as string, TOKENS[1] as string, TOKENS[2] as string),
  chainId: fc.constantFrom(1n, 1n, 1n, 2n),
  region: fc.constantFrom(null, 'eu', 'us'),
  minLeaseSec: fc.constantFrom(0, 600, 3600),
  maxLeaseSec: fc.constantFrom(3600, 86_400),
  sequence: fc.integer({ min: 0, max: 4 }),
  expiresAt: fc.integer({ min: 90, max: 130 })
}).map((o) => offer(o.peerId, o))

const orderArb: fc.Arbitrary<Order> = fc.record({
  requirements: fc.record({
    gpuCount: fc.constantFrom(1, 1, 2, 4, 8),
    classes: fc.subarray(CLASSES),
    minMemoryMiB: fc.constantFrom(0, 0, 24_576, 81_920),
    minComputeCapability: fc.constantFrom(...CCS),
    region: fc.constantFrom(null, null, 'eu'),
    operators: fc.constantFrom([], [], [OPERATORS[1] as string], [OPERATORS[0] as string, OPERATORS[2] as string]),
    allowSimulated: fc.boolean()
  }),
  maxPricePerGpuHour: fc.bigInt({ min: 0n, max: 5n }),
  durationSec: fc.constantFrom(60, 3600, 7200),
  token: fc.constantFrom(...TOKENS),
  chainId: fc.constantFrom(1n, 1n, 2n)
}).map((o) => order(o.requirements, o))

type Op = { kind: 'upsert', offer: Offer } | { kind: 'remove', index: number } | { kind: 'prune', at: number }
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: offerArb.map((offer) => ({ kind: 'upsert' as const, offer })) },
  { weight: 1, arbitrary: fc.nat(30).map((index) => ({ kind: 'remove' as const, index })) },
  { weight: 1, arbitrary: fc.integer({ min: 85, max: 100 }).map((at) => ({ kind: 'prune' as const, at })) }
)

/** The specification, written out without the book's index or helpers. */
function ccValue (text: string): number[] { return text.split('.').map(Number) }
function ccAtLeast (have: string | null, min: string | null): boolean {
  if (min == null) return true
  if (have == null) return false
  const a = ccValue(have)
  const b = ccValue(min)
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d > 0
  }
  return true
}

function fits (offer: Offer, g: OfferedGpus, o: Order, now: number): boolean {
  const r = o.requirements
  return offer.expiresAt > now &&
    offer.token.toLowerCase() === o.token.toLowerCase() && offer.chainId === o.chainId &&
    (!g.simulated || r.allowSimulated) &&
    (r.classes.length === 0 || r.classes.includes(g.class)) &&
    g.memoryMiB >= r.minMemoryMiB &&
    ccAtLeast(g.computeCapability, r.minComputeCapability) &&
    (r.region == null || offer.region === r.region) &&
    (r.operators.length === 0 || (offer.fleet != null && r.operators.some((x) => x.toLowerCase() === offer.fleet?.operator.toLowerCase()))) &&
    g.countFree >= r.gpuCount &&
    o.durationSec >= offer.minLeaseSec && o.durationSec <= offer.maxLeaseSec &&
    g.pricePerGpuHour <= o.maxPricePerGpuHour
}

function naive (offers: Iterable<Offer>, o: Order, options: MatchOptions): Candidate[] {
  const all: Candidate[] = []
  for (const offer of offers) {
    const ok = offer.gpus.filter((g) => fits(offer, g, o, options.now))
      .sort((a, b) => (a.pricePerGpuHour < b.pricePerGpuHour ? -1 : a.pricePerGpuHour > b.pricePerGpuHour ? 1 : a.class < b.class ? -1 : a.class > b.class ? 1 : 0))
    const best = ok[0]
    if (best != null) all.push({ peerId: offer.peerId, offer, gpuClass: best.class, pricePerGpuHour: best.pricePerGpuHour, gpuCount: o.requirements.gpuCount })
  }
  const lat = (id: string): number => options.latency?.(id) ?? Infinity
  all.sort((a, b) =>
    a.pricePerGpuHour !== b.pricePerGpuHour
      ? (a.pricePerGpuHour < b.pricePerGpuHour ? -1 : 1)
      : options.records.score(b.peerId) - options.records.score(a.peerId) ||
        (lat(a.peerId) === lat(b.peerId) ? 0 : lat(a.peerId) < lat(b.peerId) ? -1 : 1) ||
        (a.peerId < b.peerId ? -1 : 1))
  return all.slice(0, options.limit)
}

describe('matching index agrees with the specification', () => {
  it('on random books built by upserts, removals and prunes, and random orders', () => {
    fc.assert(fc.property(
      fc.array(opArb, { maxLength: 60 }),
      fc.array(orderArb, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 6 }),
      fc.array(fc.tuple(fc.nat(23), fc.constantFrom('accepted', 'completed', 'rejected', 'failed', 'timeout')), { maxLength: 40 }),
      fc.array(fc.tuple(fc.nat(23), fc.integer({ min: 1, max: 3 })), { maxLength: 12 }),
      // Prices above 2^53 that round to one double: the index must then compare the bigints.
      fc.constantFrom(0n, 0n, 2n ** 60n),
      (ops, generatedOrders, limit, outcomes, latencies, priceBase) => {
        const priced = (x: Offer): Offer => ({ ...x, gpus: x.gpus.map((g) => ({ ...g, pricePerGpuHour: g.pricePerGpuHour + priceBase })) })
        const orders = generatedOrders.map((o) => ({ ...o, maxPricePerGpuHour: o.maxPricePerGpuHour + priceBase }))
        const book = new OrderBook()
        const model = new Map<string, Offer>()
        for (const op of ops) {
          if (op.kind === 'upsert') {
            const upserted = priced(op.offer)
            const held = model.get(upserted.peerId)
            const expected = (held != null && upserted.sequence <= held.sequence) || upserted.expiresAt <= NOW - 10
              ? 'stale'
              : held == null ? 'added' : 'replaced'
            expect(book.upsert(upserted, NOW - 10)).toBe(expected)
            if (expected !== 'stale') model.set(upserted.peerId, upserted)
          } else if (op.kind === 'remove') {
            const peerId = `peer-${String(op.index).padStart(2, '0')}`
            expect(book.remove(peerId)).toBe(model.delete(peerId))
          } else {
            const expired = [...model.values()].filter((x) => x.expiresAt <= op.at).map((x) => x.peerId).sort()
            expect(book.prune(op.at).sort()).toEqual(expired)
            for (const id of expired) model.delete(id)
          }
        }
        expect(book.size).toBe(model.size)

        const records = new ProviderRecords()
        for (const [i, outcome] of outcomes) {
          const id = `peer-${String(i).padStart(2, '0')}`
          if (outcome === 'accepted') records.recordAccepted(id)
          else if (outcome === 'completed') records.recordCompleted(id)
          else if (outcome === 'rejected') records.recordRejected(id)
          else if (outcome === 'failed') records.recordFailed(id)
          else records.recordTimeout(id)
        }
        const latencyMap = new Map(latencies.map(([i, ms]) => [`peer-${String(i).padStart(2, '0')}`, ms]))
        const options: MatchOptions = { now: NOW, records, latency: (id) => latencyMap.get(id), limit }
        for (const o of orders) {
          const expected = naive(model.values(), o, options)
          expect(findCandidates(book, o, options)).toEqual(expected)
          expect(findCandidatesLinear(book, o, options)).toEqual(expected)
          const explanation = explainNoMatch(book, o, NOW)
          expect(explanation.offersConsidered).toBe(model.size)
          expect(explanation.fitting).toBe(naive(model.values(), o, { ...options, limit: Infinity }).length)
          expect(explanation.reasons.reduce((n, r) => n + r.count, 0) + explanation.fitting).toBe(model.size)
        }
      }
    ), { numRuns: 500 })
  })
})
