import { describe, expect, it } from 'vitest'
import { OrderBook, ProviderRecords, explainNoMatch, findCandidates, findCandidatesLinear } from '@gpumesh/matcher'
import type { MatchOptions } from '@gpumesh/matcher'
import type { Offer, Order } from '@gpumesh/protocol'
import type { OfferOverrides } from './helpers.js'
import { NOW, gpu, offer, order } from './helpers.js'

function match (offers: Offer[], o: Order, options: Partial<MatchOptions> = {}): string[] {
  const book = new OrderBook()
  for (const x of offers) book.upsert(x, NOW)
  const opts: MatchOptions = { now: NOW, records: new ProviderRecords(), limit: 10, ...options }
  const fast = findCandidates(book, o, opts)
  expect(findCandidatesLinear(book, o, opts)).toEqual(fast)
  return fast.map((c) => c.peerId)
}

/** Peer ids that fit, of one offer that fits and one that differs in what `change` sets. */
function filterCase (o: Order, change: OfferOverrides): string[] {
  return match([offer('fits'), offer('fails', change)], o)
}

describe('findCandidates filters', () => {
  it('GPU count against free GPUs of one class', () => {
    const o = order({ gpuCount: 4 })
    expect(match([
      offer('fits', { gpus: [gpu({ countFree: 4 })] }),
      offer('split', { gpus: [gpu({ countFree: 2 }), gpu({ countFree: 2 })] }),
      offer('few', { gpus: [gpu({ countFree: 3 })] })
    ], o)).toEqual(['fits'])
  })

  it('class: listed classes only, empty list means any', () => {
    expect(filterCase(order({ classes: ['H100', 'H200'] }), { gpus: [gpu({ class: 'A100' })] })).toEqual(['fits'])
    expect(filterCase(order({ classes: [] }), { gpus: [gpu({ class: 'A100', pricePerGpuHour: 3_000_000n })] })).toEqual(['fits', 'fails'])
  })

  it('memory', () => {
    expect(filterCase(order({ minMemoryMiB: 81920 }), { gpus: [gpu({ memoryMiB: 81919 })] })).toEqual(['fits'])
  })

  it('compute capability numerically; null fails a minimum', () => {
    const o = order({ minComputeCapability: '9.0' })
    expect(match([
      offer('cc10', { gpus: [gpu({ computeCapability: '10.0' })] }),
      offer('cc9', { gpus: [gpu({ computeCapability: '9' })] }),
      offer('cc89', { gpus: [gpu({ computeCapability: '8.9' })] }),
      offer('none', { gpus: [gpu({ computeCapability: null })] })
    ], o)).toEqual(['cc10', 'cc9'])
    expect(match([offer('none', { gpus: [gpu({ computeCapability: null })] })], order())).toEqual(['none'])
  })

  it('region when given', () => {
    expect(filterCase(order({ region: 'eu' }), { region: 'us' })).toEqual(['fits'])
    expect(filterCase(order({ region: 'eu' }), { region: null })).toEqual(['fits'])
    expect(filterCase(order({ region: null }), { region: 'us' })).toEqual(['fails', 'fits'])
  })

  it('operator, case-insensitive; an offer without a fleet fails an operator filter', () => {
    const operator = '0xAbCd000000000000000000000000000000000001'
    const o = order({ operators: [operator.toLowerCase()] })
    expect(match([
      offer('mine', { fleet: { operator } }),
      offer('other', { fleet: { operator: '0x0000000000000000000000000000000000000002' } }),
      offer('solo')
    ], o)).toEqual(['mine'])
  })

  it('simulated GPUs only when allowed', () => {
    expect(filterCase(order(), { gpus: [gpu({ simulated: true })] })).toEqual(['fits'])
    expect(filterCase(order({ allowSimulated: true }), { gpus: [gpu({ simulated: true })] })).toEqual(['fails', 'fits'])
  })

  it('price at most the order maximum', () => {
    const o = order({}, { maxPricePerGpuHour: 2_000_000n })
    expect(filterCase(o, { gpus: [gpu({ pricePerGpuHour: 2_000_001n })] })).toEqual(['fits'])
  })

  it('duration within the lease bounds, inclusive', () => {
    const o = order({}, { durationSec: 3600 })
    expect(match([
      offer('exact', { minLeaseSec: 3600, maxLeaseSec: 3600 }),
      offer('short', { maxLeaseSec: 3599 }),
      offer('long', { minLeaseSec: 3601 })
    ], o)).toEqual(['exact'])
  })

  it('same token (case-insensitive) and chain', () => {
    const o = order()
    expect(filterCase(o, { token: '0x00000000000000000000000000000000000000bb' })).toEqual(['fits'])
    expect(filterCase(o, { chainId: 2n })).toEqual(['fits'])
    expect(filterCase(o, { token: o.token.toUpperCase().replace('0X', '0x') })).toEqual(['fails', 'fits'])
  })

  it('not expired at now', () => {
    const book = new OrderBook()
    book.upsert(offer('a', { expiresAt: NOW + 10 }), NOW)
    book.upsert(offer('b', { expiresAt: NOW + 20 }), NOW)
    const found = findCandidates(book, order(), { now: NOW + 10, records: new ProviderRecords(), limit: 5 })
    expect(found.map((c) => c.peerId)).toEqual(['b'])
  })

  it('picks the provider\'s cheapest fitting class and reports it', () => {
    const book = new OrderBook()
    book.upsert(offer('a', {
      gpus: [
        gpu({ class: 'H100', pricePerGpuHour: 3n }),
        gpu({ class: 'A100', pricePerGpuHour: 1n, countFree: 1 }),
        gpu({ class: 'L40S', pricePerGpuHour: 2n })
      ]
    }), NOW)
    const found = findCandidates(book, order({ gpuCount: 2 }), { now: NOW, records: new ProviderRecords(), limit: 5 })
    expect(found).toEqual([{ peerId: 'a', offer: book.get('a'), gpuClass: 'L40S', pricePerGpuHour: 2n, gpuCount: 2 }])
  })
})

describe('findCandidates ranking', () => {
  const at = (price: bigint): OfferOverrides => ({ gpus: [gpu({ pricePerGpuHour: price })] })

  it('price first', () => {
    expect(match([offer('a', at(3n)), offer('b', at(1n)), offer('c', at(2n))], order())).toEqual(['b', 'c', 'a'])
  })

  it('then record, then latency (unknown last), then peer id', () => {
    const records = new ProviderRecords()
    records.recordCompleted('good')
    records.recordAccepted('good')
    records.recordRejected('bad')
    records.recordTimeout('bad')
    records.recordFailed('bad')
    const latency = new Map([['fast', 5], ['slow', 50], ['good', 500], ['bad', 1]])
    const offers = ['bad', 'slow', 'zz-unknown', 'fast', 'aa-unknown', 'good', 'cheap'].map((id) => offer(id, at(id === 'cheap' ? 1n : 2n)))
    expect(match(offers, order(), { records, latency: (id) => latency.get(id) }))
      .toEqual(['cheap', 'good', 'fast', 'slow', 'aa-unknown', 'zz-unknown', 'bad'])
  })

  it('keeps every candidate at the boundary price so secondary ranks apply', () => {
    const records = new ProviderRecords()
    records.recordCompleted('z')
    const offers = [offer('a', at(1n)), offer('b', at(2n)), offer('c', at(2n)), offer('z', at(2n)), offer('d', at(3n))]
    expect(match(offers, order(), { records, limit: 2 })).toEqual(['a', 'z'])
    expect(match(offers, order(), { records, limit: 1 })).toEqual(['a'])
    expect(match(offers, order(), { records, limit: 0 })).toEqual([])
  })

  it('walks several classes in price order', () => {
    const offers = [
      offer('a', { gpus: [gpu({ class: 'A100', pricePerGpuHour: 4n })] }),
      offer('b', { gpus: [gpu({ class: 'H100', pricePerGpuHour: 3n })] }),
      offer('c', { gpus: [gpu({ class: 'L4', pricePerGpuHour: 1n })] }),
      offer('d', { gpus: [gpu({ class: 'H100', pricePerGpuHour: 5n })] })
    ]
    expect(match(offers, order({ classes: ['H100', 'A100'] }), { limit: 2 })).toEqual(['b', 'a'])
    expect(match(offers, order(), { limit: 3 })).toEqual(['c', 'b', 'a'])
  })
})

describe('ProviderRecords', () => {
  it('scores unknown providers neutral and moves with outcomes', () => {
    const records = new ProviderRecords()
    expect(records.score('x')).toBe(0.5)
    records.recordAccepted('x')
    expect(records.score('x')).toBeGreaterThan(0.5)
    records.recordFailed('x')
    expect(records.score('x')).toBe(0.5)
    records.recordTimeout('x')
    expect(records.score('x')).toBeLessThan(0.5)
    expect(records.get('x')).toEqual({ accepted: 1, completed: 0, rejected: 0, failed: 1, timeouts: 1 })
  })
})

describe('findCandidates with an unreadable minimum compute capability', () => {
  it('matches nothing, and the explanation says why', () => {
    const book = new OrderBook()
    book.upsert(offer('a'), NOW)
    const o = order({ minComputeCapability: 'sm_90' })
    expect(findCandidates(book, o, { now: NOW, records: new ProviderRecords(), limit: 5 })).toEqual([])
    expect(findCandidatesLinear(book, o, { now: NOW, records: new ProviderRecords(), limit: 5 })).toEqual([])
    expect(explainNoMatch(book, o, NOW).reasons).toEqual([{ code: 'COMPUTE_CAPABILITY', count: 1 }])
  })
})
