import { PeerRateLimiter } from '@gpumesh/net'
import { describe, expect, it } from 'vitest'

describe('PeerRateLimiter', () => {
  it('allows `points` per window per key, and a fresh window after `durationMs`', () => {
    let now = 0
    const limiter = new PeerRateLimiter({ points: 2, durationMs: 1_000 }, () => now)
    expect([limiter.consume('a'), limiter.consume('a'), limiter.consume('a')]).toEqual([true, true, false])
    expect(limiter.consume('b')).toBe(true)
    now = 999
    expect(limiter.consume('a')).toBe(false)
    now = 1_000
    expect(limiter.consume('a')).toBe(true)
  })

  it('remembers at most maxKeys: a new key forgets the window that started first', () => {
    let now = 0
    const limiter = new PeerRateLimiter({ points: 1, durationMs: 60_000, maxKeys: 3 }, () => now)
    for (const key of ['a', 'b', 'c']) { expect(limiter.consume(key)).toBe(true); now++ }
    expect(limiter.consume('b')).toBe(false)
    expect(limiter.consume('d')).toBe(true) // forgets 'a', the oldest
    expect(limiter.consume('b')).toBe(false)
    expect(limiter.consume('c')).toBe(false)
    expect(limiter.consume('a')).toBe(true) // a fresh window again; forgets 'b'
    expect(limiter.consume('b')).toBe(true)
  })

  it('sweeps expired windows before forgetting a live one', () => {
    let now = 0
    const limiter = new PeerRateLimiter({ points: 1, durationMs: 100, maxKeys: 2 }, () => now)
    limiter.consume('a')
    now = 50
    limiter.consume('b')
    now = 120 // 'a' expired, 'b' still live
    expect(limiter.consume('c')).toBe(true)
    expect(limiter.consume('b')).toBe(false)
  })
})
