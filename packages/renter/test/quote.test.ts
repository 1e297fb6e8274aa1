import { readFile, readdir } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import {
  buildQuote, chinchillaTokens, costOf, expectedLostWallMs, gpuHoursFor, gpuMillisecondsOf, gpusForDeadline, newestReferencePriceFile,
  parseCount, parseReferencePrices, shardedStateBytes, trainingFlops, trainingStateBytes,
  type ClassPeak, type OfferedCapacity, type QuoteInput
} from '@gpumesh/renter'

// The quote's arithmetic against published figures, then the quote itself on a small book whose
// every amount can be worked out by hand.

describe('training compute', () => {
  it('gives GPT-3 175B on 300B tokens about 3.14e23 FLOPs (Brown et al. 2020 report 3.14e23)', () => {
    expect(trainingFlops(175e9, 300e9)).toBeCloseTo(3.15e23, -20)
    expect(trainingFlops(parseCount('175B'), parseCount('300B')) / 3.14e23).toBeCloseTo(1, 2)
  })

  it('gives Llama 3 405B on 15.6T tokens about 3.8e25 FLOPs (the Llama 3 paper reports 3.8e25)', () => {
    expect(trainingFlops(405e9, 15.6e12) / 3.8e25).toBeCloseTo(1, 2)
  })

  it('sets Chinchilla tokens to 20 per parameter: 70B → 1.4T (Hoffmann et al. 2022)', () => {
    expect(chinchillaTokens(70e9)).toBe(1.4e12)
  })

  it('reads counts as 7e9, 7B, 70b, 2T, 1.5M and refuses the rest', () => {
    expect(parseCount('7e9')).toBe(7e9)
    expect(parseCount('7B')).toBe(7e9)
    expect(parseCount('70b')).toBe(7e10)
    expect(parseCount('2T')).toBe(2e12)
    expect(parseCount('1.5M')).toBe(1.5e6)
    expect(parseCount('3.15e23')).toBe(3.15e23)
    expect(parseCount(' 300k ')).toBe(3e5)
    for (const bad of ['', '-7B', '7X', 'B', '0', '1e400', '7B7', '1,000']) expect(() => parseCount(bad), bad).toThrow(RangeError)
  })
})

describe('GPU time and money', () => {
  it('turns FLOPs into GPU-hours through the dense peak and the MFU', () => {
    // GPT-3 on A100 (312 TFLOPS dense BF16) at 40 % MFU: 3.15e23 / (312e12 × 0.4) / 3600 ≈ 701,122 GPU-hours.
    expect(gpuHoursFor(3.15e23, 312, 0.4)).toBeCloseTo(701_121.8, 0)
    expect(() => gpuHoursFor(1, 312, 0)).toThrow(RangeError)
    expect(() => gpuHoursFor(1, 312, 1.5)).toThrow(RangeError)
  })

  it('counts GPU time in whole milliseconds, rounded up, and bills it with the billing rule', () => {
    expect(gpuMillisecondsOf(1)).toBe(3_600_000n)
    expect(gpuMillisecondsOf(1e-9)).toBe(1n)
    expect(gpuMillisecondsOf(0)).toBe(0n)
    expect(costOf(2_000_000n, 3_600_000n)).toBe(2_000_000n) // 2.00 per GPU-hour for one GPU-hour
    expect(costOf(2_000_000n, 1_800_001n)).toBe(1_000_000n) // floored: a base unit is never overcharged
    expect(costOf(1n, 1n)).toBe(0n)
  })

  it('finds the GPUs a deadline needs', () => {
    expect(gpusForDeadline(100, 10)).toBe(10)
    expect(gpusForDeadline(100.5, 10)).toBe(11)
    expect(gpusForDeadline(0.1, 10)).toBe(1)
  })

  it('expects half a checkpoint interval lost per interruption', () => {
    // One interruption an hour over 12 hours, checkpoints every 30 minutes: 12 × 15 min.
    expect(expectedLostWallMs(1, 12, 30)).toEqual({ expectedInterruptions: 12, lostWallMs: 12n * 15n * 60_000n })
    expect(expectedLostWallMs(0, 12, 30).lostWallMs).toBe(0n)
  })
})

describe('training state', () => {
  it('keeps 16 bytes per parameter, and shards as ZeRO reports for 7.5B parameters on 64 GPUs', () => {
    // Rajbhandari et al. 2020, Figure 1: 120 GB replicated; 31.4 GB (stage 1), 16.6 GB (stage 2), 1.9 GB (stage 3).
    expect(trainingStateBytes(7.5e9)).toBe(120e9)
    expect(shardedStateBytes(7.5e9, 64, 0)).toBe(120e9)
    expect(shardedStateBytes(7.5e9, 64, 1) / 1e9).toBeCloseTo(31.4, 1)
    expect(shardedStateBytes(7.5e9, 64, 2) / 1e9).toBeCloseTo(16.6, 1)
    expect(shardedStateBytes(7.5e9, 64, 3) / 1e9).toBeCloseTo(1.9, 1)
    expect(() => shardedStateBytes(1e9, 0)).toThrow(RangeError)
  })
})

// A class whose GPU does 10^15 × 0.5 FLOP/s: one GPU-hour is 1.8e18 FLOPs.
const X: ClassPeak = { class: 'X-80GB', bf16Tflops: 1000, memoryMiB: 81_920 }
const Y: ClassPeak = { class: 'Y-24GB', bf16Tflops: 500, memoryMiB: 24_576 }
const GPU_HOUR = 1.8e18
const cap = (peerId: string, gpuClass: string, price: bigint, countFree: number, observation: OfferedCapacity['observation'] = null): OfferedCapacity =>
  ({ peerId, gpuClass, pricePerGpuHour: price, countFree, observation })

function input (overrides: Partial<QuoteInput> = {}): QuoteInput {
  return {
    flops: 8 * GPU_HOUR,
    params: null,
    mfu: 0.5,
    classes: [X, Y],
    market: {
      kind: 'live',
      capacity: [
        cap('b', 'X-80GB', 2_000_000n, 4),
        cap('a', 'X-80GB', 1_000_000n, 4, { observedSec: 86_400, interruptions: 24 }),
        cap('c', 'Y-24GB', 300_000n, 2),
        cap('d', 'Z-NEW', 1n, 1)
      ]
    },
    gpus: null,
    deadlineHours: null,
    checkpointMinutes: null,
    interruptionsPerDay: null,
    only: null,
    ...overrides
  }
}

describe('buildQuote on a live book', () => {
  it('prices every class offered: cheapest, lower median, the GPUs of the run, sorted by cost', () => {
    const q = buildQuote(input())
    expect(q.classes.map((r) => r.class)).toEqual(['Y-24GB', 'X-80GB'])
    const x = q.classes.find((r) => r.class === 'X-80GB')
    // 8 GPU-hours; all 8 offered GPUs, so 1 h of wall-clock time.
    expect(x).toMatchObject({ gpuHours: 8, gpuMilliseconds: 28_800_000n, gpus: 8, gpusAvailable: 8, enoughGpus: true, wallClockHours: 1 })
    expect(x?.costLow).toBe(8_000_000n) // 8 GPU-hours at 1.00
    expect(x?.priceMedian).toBe(1_000_000n) // prices 1,1,1,1,2,2,2,2: the lower middle one
    expect(x?.costMedian).toBe(8_000_000n)
    expect(x?.costGpus).toBe(12_000_000n) // 4 GPUs × 1 h × 1.00 + 4 × 1 h × 2.00
    const y = q.classes.find((r) => r.class === 'Y-24GB')
    // 16 GPU-hours at half the peak; 2 GPUs offered: 8 h; 16 × 0.30.
    expect(y).toMatchObject({ gpuHours: 16, gpus: 2, wallClockHours: 8, costLow: 4_800_000n, costGpus: 4_800_000n })
    expect(q.unknownClasses).toEqual(['Z-NEW'])
    expect(q.warnings.some((w) => w.includes('Z-NEW'))).toBe(true)
    // A new table row with a peak is quoted without code changes; one with no usable peak is left out, not fatal.
    expect(buildQuote(input({ classes: [X, Y, { class: 'Z-NEW', bf16Tflops: 2000, memoryMiB: 1024 }] })).classes.map((r) => r.class)).toContain('Z-NEW')
    expect(buildQuote(input({ classes: [X, { ...Y, bf16Tflops: 0 }] })).unknownClasses).toEqual(['Y-24GB', 'Z-NEW'])
  })

  it('uses the GPUs asked for, or as many as a deadline needs, and says when too few are offered', () => {
    const two = buildQuote(input({ gpus: 2, only: ['x-80gb'] })).classes[0]
    expect(two).toMatchObject({ class: 'X-80GB', gpus: 2, wallClockHours: 4, costGpus: 8_000_000n }) // the two cheapest, 4 h each
    const fast = buildQuote(input({ deadlineHours: 0.5, only: ['X-80GB'] }))
    expect(fast.classes[0]).toMatchObject({ gpus: 16, enoughGpus: false, costGpus: null, wallClockHours: 0.5 })
    expect(fast.warnings.join(' ')).toMatch(/within 0.5 h on X-80GB needs 16 GPUs, but only 8 are offered/)
  })

  it('marks classes the training state does not fit, and warns when none fits', () => {
    // 10B parameters: 160e9 bytes; over 8 GPUs 20e9 per GPU fits 80 GiB; over 2 GPUs 80e9 does not fit 24 GiB.
    const q = buildQuote(input({ params: 10e9 }))
    expect(q.classes.find((r) => r.class === 'X-80GB')).toMatchObject({ stateBytesPerGpu: 20e9, fits: true, fitsUnsharded: false })
    expect(q.classes.find((r) => r.class === 'Y-24GB')).toMatchObject({ stateBytesPerGpu: 80e9, fits: false })
    expect(q.warnings.join(' ')).not.toMatch(/fits none/)
    expect(buildQuote(input({ params: 1e12 })).warnings.join(' ')).toMatch(/fits none of the offered classes/)
  })

  it('prices lost work from the providers\' observed interruptions', () => {
    // Provider a: 24 interruptions in a day = 1 an hour; b has no record. 8 GPUs for 1 h, checkpoints every
    // 60 min: 1 expected interruption, 30 min redone on all 8 GPUs: 4 × 0.5 h × 1.00 + 4 × 0.5 h × 2.00.
    const x = buildQuote(input({ checkpointMinutes: 60, only: ['X-80GB'] })).classes[0]
    expect(x?.lostWork).toEqual({
      interruptionsPerDay: 24, expectedInterruptions: 1, lostWallMs: 1_800_000n, lostGpuHours: 4, cost: 6_000_000n, providersWithoutRecord: 1, basis: 'observed'
    })
    // Nobody observed: no figure; an assumption gives one.
    expect(buildQuote(input({ checkpointMinutes: 60, only: ['Y-24GB'] })).classes[0]?.lostWork).toBeNull()
    expect(buildQuote(input({ checkpointMinutes: 60, only: ['Y-24GB'], interruptionsPerDay: 3 })).classes[0]?.lostWork)
      .toMatchObject({ basis: 'assumed', expectedInterruptions: 1, lostWallMs: 1_800_000n, cost: 300_000n }) // 3/day × 8 h; 2 GPUs × 0.5 h × 0.30
  })

  it('warns about an MFU above 0.6 and refuses one outside (0, 1]', () => {
    expect(buildQuote(input({ mfu: 0.7 })).warnings.join(' ')).toMatch(/MFU of 0.7 is above 0.6/)
    expect(buildQuote(input()).warnings.join(' ')).not.toMatch(/MFU/)
    expect(() => buildQuote(input({ mfu: 0 }))).toThrow(RangeError)
  })
})

describe('buildQuote offline', () => {
  it('uses the reference price for every GPU, one 8-GPU server unless told otherwise', () => {
    const q = buildQuote(input({ market: { kind: 'offline', prices: [{ class: 'X-80GB', pricePerGpuHour: 1_500_000n, source: 'list' }] } }))
    expect(q.market).toBe('offline')
    expect(q.classes).toHaveLength(1)
    expect(q.classes[0]).toMatchObject({ class: 'X-80GB', gpus: 8, gpusAvailable: null, enoughGpus: true, costLow: 12_000_000n, costGpus: 12_000_000n, priceSource: 'list' })
  })
})

describe('reference prices', () => {
  it('ships a dated file whose every figure names a class of the GPU table and its source', async () => {
    const config = new URL('../../../config/', import.meta.url)
    const newest = newestReferencePriceFile(await readdir(config))
    expect(newest).toMatch(/^reference-prices-\d{4}-\d{2}-\d{2}\.json$/)
    const file = parseReferencePrices(JSON.parse(await readFile(new URL(newest ?? '', config), 'utf8')))
    const table = JSON.parse(await readFile(new URL('gpu-classes.json', config), 'utf8')) as { classes: Array<{ class: string }> }
    const classes = new Set(table.classes.map((c) => c.class))
    for (const p of file.prices) {
      expect(classes.has(p.class), p.class).toBe(true)
      expect(p.pricePerGpuHour > 0n).toBe(true)
      expect(p.source).toMatch(/https:\/\//)
    }
  })

  it('refuses a malformed file, naming the key', () => {
    const good = { version: 1, asOf: '2026-11-30', currency: 'USD', decimals: 6, prices: [{ class: 'X', pricePerGpuHour: '1.50', vendor: 'V', offering: 'o', url: 'https://example.com/p', seen: '2026-11-30' }] }
    expect(parseReferencePrices(good).prices[0]?.pricePerGpuHour).toBe(1_500_000n)
    expect(() => parseReferencePrices({ ...good, prices: [{ ...good.prices[0], pricePerGpuHour: '1.5000001' }] })).toThrow(/prices.0.pricePerGpuHour/)
    expect(() => parseReferencePrices({ ...good, prices: [{ ...good.prices[0], url: 'nope' }] })).toThrow(/prices.0.url/)
    expect(() => parseReferencePrices({ ...good, prices: [good.prices[0], good.prices[0]] })).toThrow(/twice/)
    expect(newestReferencePriceFile(['reference-prices-2026-01-02.json', 'reference-prices-2026-11-30.json', 'gpu-classes.json'])).toBe('reference-prices-2026-11-30.json')
  })
})
