import { describe, expect, it } from 'vitest'
import { ProviderRecords } from '@gpumesh/matcher'

describe('provider observations', () => {
  it('counts the time a provider was in the book and each time its offer expired unrenewed', () => {
    const records = new ProviderRecords()
    expect(records.observation('p', 0)).toBeUndefined()
    records.recordPresent('p', 1_000)
    records.recordPresent('p', 5_000) // still the same stay
    expect(records.observation('p', 11_000)).toEqual({ peerId: 'p', observedSec: 10, interruptions: 0 })
    records.recordDeparture('p', 61_000)
    records.recordDeparture('p', 99_000) // already away: nothing more
    expect(records.observation('p', 500_000)).toEqual({ peerId: 'p', observedSec: 60, interruptions: 1 })
    records.recordPresent('p', 600_000)
    expect(records.observation('p', 630_500)).toEqual({ peerId: 'p', observedSec: 90, interruptions: 1 })
    // A departure of a provider never seen present is not an interruption.
    records.recordDeparture('q', 1)
    expect(records.observation('q', 2)).toBeUndefined()
    // The proposal record is separate and unchanged.
    expect(records.get('p')).toBeUndefined()
    expect(records.delete('p')).toBe(true)
    expect(records.observation('p', 700_000)).toBeUndefined()
  })
})
