import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { askPrice, cumulativeAmount, listPrice, surgeBasisPoints, type PricingPolicy } from '../src/pricing.js'

const policy = (over: Partial<PricingPolicy> = {}): PricingPolicy => ({
  perGpuHour: { 'H100-SXM-80GB': 2_490_000n, 'RTX-4090': 350_000n },
  defaultPerGpuHour: null,
  spotDiscountPercent: 0,
  surge: { enabled: false, thresholdPercent: 75, maxPercent: 50 },
  ...over
})

describe('pricing', () => {
  it('asks the list price of a listed class, and nothing for an unlisted one without a default', () => {
    expect(askPrice('H100-SXM-80GB', policy(), { leased: 0, total: 8 })).toBe(2_490_000n)
    expect(askPrice('A100-SXM4-80GB', policy(), { leased: 0, total: 8 })).toBeNull()
    expect(listPrice('A100-SXM4-80GB', policy({ defaultPerGpuHour: 1_000_000n }))).toBe(1_000_000n)
  })

  it('takes the spot discount off and rounds down to base units', () => {
    expect(askPrice('RTX-4090', policy({ spotDiscountPercent: 33 }), { leased: 0, total: 1 })).toBe(234_500n)
    expect(askPrice('H100-SXM-80GB', policy({ perGpuHour: { 'H100-SXM-80GB': 7n }, spotDiscountPercent: 50 }), { leased: 0, total: 1 })).toBe(3n)
  })

  it('surges linearly from the threshold to the maximum', () => {
    const p = policy({ surge: { enabled: true, thresholdPercent: 50, maxPercent: 40 } })
    expect(surgeBasisPoints(p, { leased: 4, total: 8 })).toBe(0n)
    expect(surgeBasisPoints(p, { leased: 6, total: 8 })).toBe(2_000n)
    expect(surgeBasisPoints(p, { leased: 8, total: 8 })).toBe(4_000n)
    expect(askPrice('RTX-4090', p, { leased: 8, total: 8 })).toBe(490_000n)
    expect(surgeBasisPoints(p, { leased: 0, total: 0 })).toBe(0n)
  })

  it('never falls with more GPUs leased, and never below the discounted list price', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 90 }),
      fc.integer({ min: 1, max: 64 }), fc.bigInt({ min: 0n, max: 10n ** 30n }),
      (threshold, max, discount, total, list) => {
        const p = policy({ perGpuHour: { X: list }, spotDiscountPercent: discount, surge: { enabled: true, thresholdPercent: threshold, maxPercent: max } })
        let previous = -1n
        for (let leased = 0; leased <= total; leased++) {
          const price = askPrice('X', p, { leased, total }) as bigint
          expect(price >= previous).toBe(true)
          expect(price >= list * BigInt(100 - discount) / 100n).toBe(true)
          previous = price
        }
      }))
  })

  it('bills by the cumulative rule, so periods never lose more than one base unit in total', () => {
    // 1.00 per GPU-hour (6 decimals) for 1 ms of one GPU: 0.277… base units, rounded down.
    expect(cumulativeAmount(1_000_000n, 1n)).toBe(0n)
    expect(cumulativeAmount(1_000_000n, 3_600_000n)).toBe(1_000_000n)
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10n ** 12n }), fc.array(fc.bigInt({ min: 0n, max: 10n ** 7n }), { maxLength: 50 }), (price, periods) => {
      let gpuMs = 0n
      let paid = 0n
      for (const period of periods) {
        const before = cumulativeAmount(price, gpuMs)
        gpuMs += period
        paid += cumulativeAmount(price, gpuMs) - before
      }
      expect(paid).toBe(price * gpuMs / 3_600_000n)
    }))
  })
})
