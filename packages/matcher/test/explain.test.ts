import { describe, expect, it } from 'vitest'
import { OrderBook, explainNoMatch } from '@gpumesh/matcher'
import { NOW, gpu, offer, order } from './helpers.js'

describe('explainNoMatch', () => {
  it('counts each offer under its first failing reason and names the price that would fit', () => {
    const book = new OrderBook()
    book.upsert(offer('few1', { gpus: [gpu({ countFree: 1 })] }), NOW)
    book.upsert(offer('few2', { gpus: [gpu({ countFree: 1, pricePerGpuHour: 9_000_000n })] }), NOW)
    book.upsert(offer('few3', { gpus: [gpu({ countFree: 0 })] }), NOW)
    book.upsert(offer('dear1', { gpus: [gpu({ pricePerGpuHour: 2_100_000n })] }), NOW)
    book.upsert(offer('dear2', { gpus: [gpu({ pricePerGpuHour: 3_000_000n })] }), NOW)
    const explanation = explainNoMatch(book, order({ gpuCount: 2 }, { maxPricePerGpuHour: 2_000_000n }), NOW)
    expect(explanation).toEqual({
      offersConsidered: 5,
      fitting: 0,
      reasons: [{ code: 'TOO_FEW_GPUS', count: 3 }, { code: 'PRICE', count: 2 }],
      cheapestFitting: { pricePerGpuHour: 2_100_000n, wouldNeed: 'price' },
      message: '5 offers: 3 too few GPUs, 2 above your price; the cheapest fitting would need 2.10/GPU-hour'
    })
  })

  it('follows the fixed check order', () => {
    const book = new OrderBook()
    const o = order({ classes: ['H100'], minMemoryMiB: 80_000, minComputeCapability: '9.0', region: 'eu', operators: ['0x0000000000000000000000000000000000000001'] }, { maxPricePerGpuHour: 1n })
    const everythingWrong = { region: 'us', gpus: [gpu({ class: 'A100', memoryMiB: 1, computeCapability: '7.0', simulated: true, countFree: 0 })] }
    book.upsert(offer('expired', { ...everythingWrong, expiresAt: NOW + 1 }), NOW)
    book.upsert(offer('token', { ...everythingWrong, chainId: 5n }), NOW)
    book.upsert(offer('simulated', everythingWrong), NOW)
    book.upsert(offer('class', { region: 'us', gpus: [gpu({ class: 'A100', memoryMiB: 1 })] }), NOW)
    book.upsert(offer('memory', { region: 'us', gpus: [gpu({ memoryMiB: 1, computeCapability: '7.0' })] }), NOW)
    book.upsert(offer('cc', { region: 'us', gpus: [gpu({ computeCapability: '8.9' })] }), NOW)
    book.upsert(offer('region', { region: 'us', gpus: [gpu({ countFree: 0 })] }), NOW)
    book.upsert(offer('operator', { gpus: [gpu({ countFree: 0 })] }), NOW)
    const fleet = { operator: '0x0000000000000000000000000000000000000001' }
    book.upsert(offer('few', { fleet, maxLeaseSec: 1, gpus: [gpu({ countFree: 0 })] }), NOW)
    book.upsert(offer('duration', { fleet, maxLeaseSec: 1 }), NOW)
    book.upsert(offer('price', { fleet }), NOW)
    const explanation = explainNoMatch(book, o, NOW + 1)
    expect(explanation.reasons).toEqual([
      'EXPIRED', 'TOKEN', 'SIMULATED', 'CLASS', 'MEMORY', 'COMPUTE_CAPABILITY', 'REGION', 'OPERATOR', 'TOO_FEW_GPUS', 'DURATION', 'PRICE'
    ].map((code) => ({ code, count: 1 })))
    expect(explanation.message).toBe('11 offers: 1 expired, 1 in another token or chain, 1 simulated, 1 of another GPU class, ' +
      '1 with too little GPU memory, 1 below the compute capability, 1 in another region, 1 of another operator, ' +
      '1 too few GPUs, 1 not for this lease length, 1 above your price; the cheapest fitting would need 2.00/GPU-hour')
  })

  it('attributes a multi-class offer by its kind that got furthest', () => {
    const book = new OrderBook()
    book.upsert(offer('a', { gpus: [gpu({ class: 'A100' }), gpu({ class: 'H100', pricePerGpuHour: 5_000_000n })] }), NOW)
    const explanation = explainNoMatch(book, order({ classes: ['H100'] }, { maxPricePerGpuHour: 1_000_000n }), NOW, { decimals: 6 })
    expect(explanation.reasons).toEqual([{ code: 'PRICE', count: 1 }])
    expect(explanation.message).toBe('1 offer: 1 above your price; the cheapest fitting would need 5.00/GPU-hour')
  })

  it('formats with the token decimals', () => {
    const book = new OrderBook()
    book.upsert(offer('a', { gpus: [gpu({ pricePerGpuHour: 1_234_500_000_000_000_000n })] }), NOW)
    const explanation = explainNoMatch(book, order({}, { maxPricePerGpuHour: 1n }), NOW, { decimals: 18 })
    expect(explanation.message).toBe('1 offer: 1 above your price; the cheapest fitting would need 1.2345/GPU-hour')
  })

  it('says so when the book is empty, and counts fitting offers without a price hint', () => {
    expect(explainNoMatch(new OrderBook(), order(), NOW)).toEqual({ offersConsidered: 0, fitting: 0, reasons: [], message: 'No offers in the book.' })
    const book = new OrderBook()
    book.upsert(offer('a'), NOW)
    book.upsert(offer('b', { gpus: [gpu({ pricePerGpuHour: 99_000_000n })] }), NOW)
    const explanation = explainNoMatch(book, order(), NOW)
    expect(explanation.cheapestFitting).toBeUndefined()
    expect(explanation.message).toBe('2 offers: 1 fits, 1 above your price')
  })
})
