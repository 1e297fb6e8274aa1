import { describe, expect, it } from 'vitest'
import type { TokenEarnings } from '@gpumesh/ledger'
import { DashboardHistory, RingBuffer, historyCapacity } from '../src/history.js'

const reading = (uuid: string, index: number, utilizationPercent: number) =>
  ({ uuid, index, utilizationPercent, memoryUsedMiB: 10, temperatureC: 50, powerDrawW: 100 })

const earnings = (accrued: bigint): TokenEarnings => ({
  chainId: 1n, token: '0x00000000000000000000000000000000000000aa', renters: [],
  accrued, vouchered: accrued, exported: 0n, redeemed: 0n, outstanding: accrued, unvouchered: 0n, leases: 1
})

describe('dashboard history', () => {
  it('keeps at most its capacity, oldest out first', () => {
    const ring = new RingBuffer<number>(3)
    for (let i = 1; i <= 5; i++) ring.push(i)
    expect(ring.toArray()).toEqual([3, 4, 5])
    expect(ring.length).toBe(3)
    expect(() => new RingBuffer(0)).toThrow(RangeError)
  })

  it('sizes the window from the probe interval, within bounds', () => {
    expect(historyCapacity(3_600_000, 30_000)).toBe(121)
    expect(historyCapacity(3_600_000, 1)).toBe(3600)
    expect(historyCapacity(3_600_000, 7_200_000)).toBe(2)
  })

  it('records each GPU and forgets GPUs no longer reported; filters by time', () => {
    const history = new DashboardHistory(2)
    history.recordGpus(1000, [reading('a', 0, 10), reading('b', 1, 20)])
    history.recordGpus(2000, [reading('a', 0, 11), reading('b', 1, 21)])
    history.recordGpus(3000, [reading('a', 0, 12)])
    expect(history.gpus()).toEqual([{ uuid: 'a', index: 0, points: [expect.objectContaining({ at: 2000, utilizationPercent: 11 }), expect.objectContaining({ at: 3000, utilizationPercent: 12 })] }])
    expect(history.gpus(2500)[0]?.points.map((p) => p.at)).toEqual([3000])
  })

  it('records earnings per token, bounded', () => {
    const history = new DashboardHistory(2)
    for (const [at, amount] of [[1, 5n], [2, 7n], [3, 9n]] as const) history.recordEarnings(at, [earnings(amount)])
    const [token] = history.earnings()
    expect(token?.points.map((p) => [p.at, p.accrued])).toEqual([[2, 7n], [3, 9n]])
  })
})
