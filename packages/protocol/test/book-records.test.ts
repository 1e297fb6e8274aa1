import { describe, expect, it } from 'vitest'
import { decodeBookPage, encodeMessage, toWire, validateBookPage, validateBookQuery } from '@gpumesh/protocol'
import { PROVIDER_PEER, RENTER_PEER, sampleMarketMessages, sampleOffer } from './samples.js'
import { codeOf } from './errors.js'

// A book query may ask for the matcher's observations of the listed providers; a page carries them
// only for providers it lists, once each, with bounded numbers.

describe('book records', () => {
  it('round-trips a query that asks for records and a page that carries them', () => {
    const query = { ...toWire(sampleMarketMessages()[2]) as object, includeRecords: true }
    expect(validateBookQuery(query).includeRecords).toBe(true)
    const page = { type: 'book-page' as const, offers: [sampleOffer()], nextOffset: null, bookSize: 1, records: [{ peerId: PROVIDER_PEER, observedSec: 86_400, interruptions: 2 }] }
    expect(decodeBookPage(encodeMessage(page))).toEqual(page)
    // Pages without records still decode (matchers that were not asked, or older ones).
    expect(decodeBookPage(encodeMessage({ ...page, records: undefined })).records).toBeUndefined()
  })

  it('refuses records of providers not on the page, twice the same provider, and numbers out of range', () => {
    const page = toWire({ type: 'book-page', offers: [sampleOffer()], nextOffset: null, bookSize: 1 }) as Record<string, unknown>
    const record = { peerId: PROVIDER_PEER, observedSec: 10, interruptions: 0 }
    expect(codeOf(() => validateBookPage({ ...page, records: [{ ...record, peerId: RENTER_PEER }] }))).toEqual(['INVALID_FIELD', 'records.0.peerId'])
    expect(codeOf(() => validateBookPage({ ...page, records: [record, record] }))).toEqual(['INVALID_FIELD', 'records.1.peerId'])
    expect(codeOf(() => validateBookPage({ ...page, records: [{ ...record, interruptions: -1 }] }))).toEqual(['INVALID_FIELD', 'records.0.interruptions'])
    expect(codeOf(() => validateBookPage({ ...page, records: [{ ...record, observedSec: 1.5 }] }))).toEqual(['INVALID_FIELD', 'records.0.observedSec'])
    expect(codeOf(() => validateBookPage({ ...page, records: [{ ...record, extra: 1 }] }))).toEqual(['INVALID_FIELD', 'records.0.extra'])
    expect(codeOf(() => validateBookQuery({ ...toWire(sampleMarketMessages()[2]) as object, includeRecords: 'yes' }))).toEqual(['INVALID_FIELD', 'includeRecords'])
  })
})
