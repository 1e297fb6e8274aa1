/**
 * `gpumesh lease submit --dry-run` previews an order in the renter, which may not import the matcher.
 * Its checks are a second copy of the matcher's, so this property test holds the two together: on
 * random books and orders, the renter's preview lists exactly the providers, classes and prices the
 * matcher's reference scan (`findCandidatesLinear`, neutral records, no latency) would propose to, in
 * the same order.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { OrderBook, ProviderRecords, findCandidatesLinear } from '@gpumesh/matcher'
import { previewOrder, type JobFile } from '@gpumesh/renter'
import type { Offer, OfferedGpus, Order } from '@gpumesh/protocol'
import { gpu, offer, order } from '../packages/matcher/test/helpers.js'

const NOW = 100
const TOKENS = ['0x00000000000000000000000000000000000000aa', '0x00000000000000000000000000000000000000AA', '0x00000000000000000000000000000000000000bb']
const OPERATORS = ['0x00000000000000000000000000000000000000C1', '0x00000000000000000000000000000000000000c1', '0x00000000000000000000000000000000000000c2']
const CLASSES = ['A100', 'H100', 'L4']
const CCS = [null, '7.5', '8.0', '9', '9.0', '10.0', 'x']

const gpuArb: fc.Arbitrary<OfferedGpus> = fc.record({
  class: fc.constantFrom(...CLASSES),
  memoryMiB: fc.constantFrom(24_576, 81_920),
  computeCapability: fc.constantFrom(...CCS.filter((c) => c !== 'x')),
  countFree: fc.integer({ min: 0, max: 8 }),
  pricePerGpuHour: fc.bigInt({ min: 1n, max: 4n }),
  simulated: fc.boolean()
}).map((g) => gpu(g))

const offerArb: fc.Arbitrary<Offer> = fc.record({
  peerId: fc.constantFrom(...Array.from({ length: 12 }, (_, i) => `peer-${String(i).padStart(2, '0')}`)),
  fleet: fc.option(fc.constantFrom(...OPERATORS).map((operator) => ({ operator })), { nil: null }),
  gpus: fc.array(gpuArb, { minLength: 0, maxLength: 3 }),
  token: fc.constantFrom(...TOKENS),
  chainId: fc.constantFrom(1n, 1n, 2n),
  region: fc.constantFrom(null, 'eu', 'us'),
  minLeaseSec: fc.constantFrom(0, 600, 3600),
  maxLeaseSec: fc.constantFrom(3600, 86_400),
  sequence: fc.integer({ min: 0, max: 3 }),
  expiresAt: fc.integer({ min: 90, max: 130 })
}).map((o) => offer(o.peerId, o))

const orderArb: fc.Arbitrary<Order> = fc.record({
  requirements: fc.record({
    gpuCount: fc.constantFrom(1, 2, 4, 8),
    classes: fc.subarray(CLASSES),
    minMemoryMiB: fc.constantFrom(0, 24_576, 81_920),
    minComputeCapability: fc.constantFrom(...CCS),
    region: fc.constantFrom(null, 'eu'),
    operators: fc.constantFrom([], [OPERATORS[1] as string], [OPERATORS[0] as string, OPERATORS[2] as string]),
    allowSimulated: fc.boolean()
  }),
  maxPricePerGpuHour: fc.bigInt({ min: 1n, max: 5n }),
  durationSec: fc.constantFrom(60, 3600, 7200),
  token: fc.constantFrom(...TOKENS),
  chainId: fc.constantFrom(1n, 2n)
}).map((o) => order(o.requirements, o))

/** The job file an order is signed from. */
function jobOf (o: Order): JobFile {
  return {
    path: 'job.yaml',
    requirements: o.requirements,
    maxPricePerGpuHour: o.maxPricePerGpuHour,
    budget: null,
    token: { address: o.token, decimals: 6, chainId: o.chainId },
    durationSec: o.durationSec,
    spec: { command: 'true', args: [], env: {}, image: null, maxRunTimeSec: 60 },
    files: []
  }
}

describe('lease submit --dry-run preview', () => {
  it('agrees with the matcher on who would be proposed to, at what class and price, in what order', () => {
    fc.assert(fc.property(fc.array(offerArb, { maxLength: 16 }), orderArb, (offers, o) => {
      const book = new OrderBook()
      for (const each of offers) book.upsert(each, NOW)
      const matcher = findCandidatesLinear(book, o, { now: NOW, records: new ProviderRecords(), limit: 1000 })
      const preview = previewOrder(jobOf(o), [...book.offers()], NOW, 10n ** 18n)
      expect(preview.candidates.map((c) => [c.peerId, c.gpuClass, c.pricePerGpuHour]))
        .toEqual(matcher.map((c) => [c.peerId, c.gpuClass, c.pricePerGpuHour]))
      expect(Object.values(preview.mismatches).reduce((a, b) => a + b, 0)).toBe(book.size - matcher.length)
    }), { numRuns: 500 })
  })
})
