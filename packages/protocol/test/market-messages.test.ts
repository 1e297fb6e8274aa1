import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  LIMITS, ProtocolError, decodeBookPage, decodeBookQuery, decodeMessage, decodeOrderResult, encodeMessage, toWire,
  validateBookQuery, validateOrderResult
} from '@gpumesh/protocol'
import { LEASE_ID, RENTER_PEER, sampleMarketMessages } from './samples.js'
import { codeOf } from './errors.js'

describe('order-result, book-query, book-page', () => {
  for (const message of sampleMarketMessages()) {
    it(`round-trips ${message.type}${'status' in message ? `/${message.status}` : ''}`, () => {
      const bytes = encodeMessage(message)
      expect(decodeMessage(bytes)).toEqual(message)
      expect(decodeMessage(bytes, [message.type])).toEqual(message)
    })
  }

  it('has typed decoders that refuse the other types', () => {
    const [leased, , query, page] = sampleMarketMessages().map((m) => encodeMessage(m))
    expect(decodeOrderResult(leased as Uint8Array).type).toBe('order-result')
    expect(decodeBookQuery(query as Uint8Array).type).toBe('book-query')
    expect(decodeBookPage(page as Uint8Array).type).toBe('book-page')
    expect(codeOf(() => decodeBookQuery(leased as Uint8Array))).toEqual(['MALFORMED', 'type'])
  })

  it('refuses a lease for another order or from another provider', () => {
    const leased = toWire(sampleMarketMessages()[0]) as { lease: { terms: Record<string, unknown> }, providerPeerId: string }
    expect(codeOf(() => validateOrderResult({ ...leased, providerPeerId: RENTER_PEER }))).toEqual(['INVALID_FIELD', 'lease.terms.providerPeerId'])
    const other = structuredClone(leased)
    other.lease.terms.orderId = LEASE_ID
    expect(codeOf(() => validateOrderResult(other))).toEqual(['INVALID_FIELD', 'lease.terms.orderId'])
  })

  it('caps the page size and checks filters', () => {
    const query = toWire(sampleMarketMessages()[2]) as Record<string, unknown>
    expect(codeOf(() => validateBookQuery({ ...query, limit: LIMITS.bookPage + 1 }))).toEqual(['INVALID_FIELD', 'limit'])
    expect(codeOf(() => validateBookQuery({ ...query, limit: 0 }))).toEqual(['INVALID_FIELD', 'limit'])
    expect(codeOf(() => validateBookQuery({ ...query, filters: { ...(query.filters as object), minGpus: -1 } }))).toEqual(['INVALID_FIELD', 'filters.minGpus'])
    expect(codeOf(() => validateBookQuery({ ...query, filters: { ...(query.filters as object), extra: 1 } }))).toEqual(['INVALID_FIELD', 'filters.extra'])
  })

  it('decoders throw only ProtocolError on random JSON', () => {
    const utf8 = new TextEncoder()
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
      for (const decode of [decodeOrderResult, decodeBookQuery, decodeBookPage]) {
        try {
          decode(utf8.encode(JSON.stringify(value)))
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err
        }
      }
    }), { numRuns: 200 })
  })
})
