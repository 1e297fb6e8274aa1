import { describe, expect, it } from 'vitest'
import { OrderBook, compareComputeCapability, parseComputeCapability } from '@gpumesh/matcher'
import { NOW, gpu, offer } from './helpers.js'

describe('OrderBook.upsert', () => {
  it('adds, replaces with a higher sequence, ignores older or equal ones', () => {
    const book = new OrderBook()
    expect(book.upsert(offer('a', { sequence: 5 }), NOW)).toBe('added')
    expect(book.size).toBe(1)
    expect(book.upsert(offer('a', { sequence: 5, region: 'us' }), NOW)).toBe('stale')
    expect(book.upsert(offer('a', { sequence: 4, region: 'us' }), NOW)).toBe('stale')
    expect(book.get('a')?.region).toBe('eu')
    expect(book.upsert(offer('a', { sequence: 6, region: 'us' }), NOW)).toBe('replaced')
    expect(book.get('a')?.region).toBe('us')
    expect(book.size).toBe(1)
  })

  it('ignores an offer that has already expired', () => {
    const book = new OrderBook()
    expect(book.upsert(offer('a', { expiresAt: NOW }), NOW)).toBe('stale')
    expect(book.size).toBe(0)
  })

  it('re-indexes a replaced offer: old prices and classes are gone', () => {
    const book = new OrderBook()
    book.upsert(offer('a', { gpus: [gpu({ class: 'A100', pricePerGpuHour: 1n })] }), NOW)
    book.upsert(offer('a', { sequence: 2, gpus: [gpu({ class: 'H100', pricePerGpuHour: 9n })] }), NOW)
    expect(book.classes()).toEqual(['H100'])
    expect(book.list().map((l) => [l.peerId, l.gpuClass, l.pricePerGpuHour])).toEqual([['a', 'H100', 9n]])
  })
})

describe('OrderBook.remove and prune', () => {
  it('removes by peer id', () => {
    const book = new OrderBook()
    book.upsert(offer('a'), NOW)
    book.upsert(offer('b'), NOW)
    expect(book.remove('a')).toBe(true)
    expect(book.remove('a')).toBe(false)
    expect(book.get('a')).toBeUndefined()
    expect(book.has('b')).toBe(true)
    expect(book.list().map((l) => l.peerId)).toEqual(['b'])
  })

  it('prunes offers with expiresAt <= now and returns their peer ids', () => {
    const book = new OrderBook()
    book.upsert(offer('a', { expiresAt: NOW + 10 }), NOW)
    book.upsert(offer('b', { expiresAt: NOW + 20 }), NOW)
    book.upsert(offer('c', { expiresAt: NOW + 30 }), NOW)
    expect(book.prune(NOW + 9)).toEqual([])
    expect(book.prune(NOW + 20).sort()).toEqual(['a', 'b'])
    expect(book.size).toBe(1)
    expect(book.list().map((l) => l.peerId)).toEqual(['c'])
    expect(book.prune(NOW + 100)).toEqual(['c'])
    expect(book.classes()).toEqual([])
  })
})

describe('OrderBook.list', () => {
  function sample (): OrderBook {
    const book = new OrderBook()
    book.upsert(offer('d', { gpus: [gpu({ pricePerGpuHour: 3n })] }), NOW)
    book.upsert(offer('c', { gpus: [gpu({ pricePerGpuHour: 1n })] }), NOW)
    book.upsert(offer('b', { gpus: [gpu({ pricePerGpuHour: 2n })], region: 'us' }), NOW)
    book.upsert(offer('a', { gpus: [gpu({ pricePerGpuHour: 2n, class: 'A100', memoryMiB: 40960, countFree: 1 })] }), NOW)
    book.upsert(offer('e', { gpus: [gpu({ pricePerGpuHour: 0n, simulated: true })] }), NOW)
    book.upsert(offer('f', { gpus: [gpu({ pricePerGpuHour: 5n })], fleet: { operator: '0xAbCd000000000000000000000000000000000001' } }), NOW)
    book.upsert(offer('g', { gpus: [gpu({ pricePerGpuHour: 9n, class: 'A100' }), gpu({ pricePerGpuHour: 4n, class: 'L4', memoryMiB: 24576 })] }), NOW)
    return book
  }

  it('orders by price then peer id, without simulated GPUs by default', () => {
    expect(sample().list().map((l) => l.peerId)).toEqual(['c', 'a', 'b', 'd', 'g', 'f'])
    expect(sample().list({ filters: { includeSimulated: true } }).map((l) => l.peerId)).toEqual(['e', 'c', 'a', 'b', 'd', 'g', 'f'])
  })

  it('pages with offset and limit', () => {
    const book = sample()
    expect(book.list({ offset: 1, limit: 2 }).map((l) => l.peerId)).toEqual(['a', 'b'])
    expect(book.list({ offset: 5, limit: 10 }).map((l) => l.peerId)).toEqual(['f'])
    expect(book.list({ limit: 0 })).toEqual([])
  })

  it('applies each filter', () => {
    const book = sample()
    const ids = (filters: Parameters<OrderBook['list']>[0]): string[] => book.list(filters).map((l) => l.peerId)
    expect(ids({ filters: { class: 'A100' } })).toEqual(['a', 'g'])
    expect(book.list({ filters: { class: 'A100' } }).map((l) => l.pricePerGpuHour)).toEqual([2n, 9n])
    expect(ids({ filters: { minMemoryMiB: 50_000 } })).toEqual(['c', 'b', 'd', 'f', 'g'])
    expect(book.list({ filters: { minMemoryMiB: 50_000 } }).find((l) => l.peerId === 'g')?.gpuClass).toBe('A100')
    expect(ids({ filters: { minCount: 2 } })).toEqual(['c', 'b', 'd', 'g', 'f'])
    expect(ids({ filters: { maxPricePerGpuHour: 2n } })).toEqual(['c', 'a', 'b'])
    expect(ids({ filters: { region: 'us' } })).toEqual(['b'])
    expect(ids({ filters: { operator: '0xabcd000000000000000000000000000000000001' } })).toEqual(['f'])
  })

  it('leaves out expired offers when given now', () => {
    const book = new OrderBook()
    book.upsert(offer('a', { expiresAt: NOW + 5 }), NOW)
    book.upsert(offer('b', { expiresAt: NOW + 50 }), NOW)
    expect(book.list({ now: NOW + 5 }).map((l) => l.peerId)).toEqual(['b'])
    expect(book.list().map((l) => l.peerId)).toEqual(['a', 'b'])
  })
})

describe('compute capability', () => {
  it('compares numerically per component', () => {
    const cc = (text: string): number[] => parseComputeCapability(text) ?? []
    expect(compareComputeCapability(cc('8.9'), cc('9.0'))).toBeLessThan(0)
    expect(compareComputeCapability(cc('9.0'), cc('10.0'))).toBeLessThan(0)
    expect(compareComputeCapability(cc('9'), cc('9.0'))).toBe(0)
    expect(compareComputeCapability(cc('12.1'), cc('9.10'))).toBeGreaterThan(0)
    expect(parseComputeCapability(null)).toBeNull()
    expect(parseComputeCapability('gfx90a')).toBeNull()
  })
})
