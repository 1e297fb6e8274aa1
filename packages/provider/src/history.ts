import type { TokenEarnings } from '@gpumesh/ledger'
import type { Address } from '@gpumesh/protocol'

/**
 * What the dashboard charts: per GPU its readings, and the earnings totals, over the last hour. Kept in
 * memory only (a restart starts empty), sampled on the probe cadence, bounded: `capacity` points per
 * GPU and per token, and only GPUs of the newest sample are kept.
 */

/** One reading of one GPU; null where the tool could not say. */
export interface GpuPoint {
  at: number
  utilizationPercent: number | null
  memoryUsedMiB: number | null
  temperatureC: number | null
  powerDrawW: number | null
}

export interface GpuReadingNow extends Omit<GpuPoint, 'at'> {
  uuid: string
  index: number | null
}

export interface GpuHistory {
  uuid: string
  index: number | null
  points: GpuPoint[]
}

/** Earnings totals of one token at one moment (bigint base units). */
export interface EarningsPoint {
  at: number
  accrued: bigint
  vouchered: bigint
  redeemed: bigint
  exported: bigint
  outstanding: bigint
}

export interface EarningsHistory {
  chainId: bigint
  token: Address
  points: EarningsPoint[]
}

/** A fixed-size buffer that forgets its oldest entry when full. */
export class RingBuffer<T> {
  readonly #items: T[] = []
  readonly #capacity: number

  constructor (capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer')
    this.#capacity = capacity
  }

  push (item: T): void {
    this.#items.push(item)
    if (this.#items.length > this.#capacity) this.#items.shift()
  }

  toArray (): T[] {
    return [...this.#items]
  }

  get length (): number {
    return this.#items.length
  }
}

/** Points per series for `windowMs` sampled every `intervalMs` (at least 2, at most 3600). */
export function historyCapacity (windowMs: number, intervalMs: number): number {
  return Math.min(3600, Math.max(2, Math.ceil(windowMs / Math.max(1, intervalMs)) + 1))
}

export class DashboardHistory {
  readonly #capacity: number
  readonly #gpus = new Map<string, { index: number | null, points: RingBuffer<GpuPoint> }>()
  readonly #earnings = new Map<string, { chainId: bigint, token: Address, points: RingBuffer<EarningsPoint> }>()

  constructor (capacity: number) {
    this.#capacity = capacity
  }

  /** Records the readings of every GPU now; GPUs missing from `readings` are forgotten. */
  recordGpus (at: number, readings: readonly GpuReadingNow[]): void {
    const seen = new Set<string>()
    for (const r of readings) {
      seen.add(r.uuid)
      let entry = this.#gpus.get(r.uuid)
      if (entry === undefined) {
        entry = { index: r.index, points: new RingBuffer(this.#capacity) }
        this.#gpus.set(r.uuid, entry)
      }
      entry.index = r.index
      entry.points.push({ at, utilizationPercent: r.utilizationPercent, memoryUsedMiB: r.memoryUsedMiB, temperatureC: r.temperatureC, powerDrawW: r.powerDrawW })
    }
    for (const uuid of [...this.#gpus.keys()]) if (!seen.has(uuid)) this.#gpus.delete(uuid)
  }

  /** Records the earnings totals per token now. */
  recordEarnings (at: number, earnings: readonly TokenEarnings[]): void {
    for (const e of earnings) {
      const key = `${e.chainId}:${e.token.toLowerCase()}`
      let entry = this.#earnings.get(key)
      if (entry === undefined) {
        entry = { chainId: e.chainId, token: e.token, points: new RingBuffer(this.#capacity) }
        this.#earnings.set(key, entry)
      }
      entry.points.push({ at, accrued: e.accrued, vouchered: e.vouchered, redeemed: e.redeemed, exported: e.exported, outstanding: e.outstanding })
    }
  }

  gpus (since = 0): GpuHistory[] {
    return [...this.#gpus].map(([uuid, e]) => ({ uuid, index: e.index, points: e.points.toArray().filter((p) => p.at >= since) }))
  }

  earnings (since = 0): EarningsHistory[] {
    return [...this.#earnings.values()].map((e) => ({ chainId: e.chainId, token: e.token, points: e.points.toArray().filter((p) => p.at >= since) }))
  }
}
