/** Property tests: whatever bytes arrive, decoders either return a value or throw a ProtocolError. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  MESSAGE_TYPES, ProtocolError, decodeMessage, decodeJobAttach, decodeJobEvent, decodeJobSubmit, decodeLeaseDecision,
  decodeLeaseProposal, decodeOffer, decodeOrder, decodeTerminate, decodeVoucher, encodeMessage, validateMessage
} from '@gpumesh/protocol'
import { sampleMessages } from './samples.js'

const decoders = [
  (b: Uint8Array) => decodeMessage(b),
  (b: Uint8Array) => decodeMessage(b, MESSAGE_TYPES),
  decodeOffer, decodeOrder, decodeLeaseProposal, decodeLeaseDecision, decodeJobSubmit, decodeJobAttach, decodeJobEvent,
  decodeVoucher, decodeTerminate
]
const encoded = sampleMessages().map((m) => encodeMessage(m))
const utf8 = new TextEncoder()

function onlyProtocolErrors (bytes: Uint8Array): void {
  for (const decode of decoders) {
    try {
      decode(bytes)
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err
      expect(['TOO_LARGE', 'MALFORMED', 'INVALID_FIELD', 'EXPIRED']).toContain(err.code)
    }
  }
}

/** Replaces a random node of a JSON value with a random JSON value. */
function mutate (value: unknown, path: number[], replacement: unknown): unknown {
  if (path.length === 0 || value === null || typeof value !== 'object') return replacement
  const [head = 0, ...rest] = path
  if (Array.isArray(value)) {
    if (value.length === 0) return replacement
    const copy = [...value] as unknown[]
    const i = head % copy.length
    copy[i] = mutate(copy[i], rest, replacement)
    return copy
  }
  const record = value as Record<string, unknown>
  const keys = Object.keys(record)
  if (keys.length === 0) return replacement
  const key = keys[head % keys.length] ?? ''
  if (rest.length === 0 && head % 7 === 0) {
    const { [key]: _dropped, ...others } = record
    return others
  }
  return { ...record, [key]: mutate(record[key], rest, replacement) }
}

describe('decoders under random input', () => {
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), onlyProtocolErrors), { numRuns: 300 })
  })

  it('random JSON values', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => { onlyProtocolErrors(utf8.encode(JSON.stringify(value))) }), { numRuns: 300 })
  })

  it('truncated valid encodings', () => {
    fc.assert(fc.property(fc.nat(encoded.length - 1), fc.nat(), (which, cut) => {
      const bytes = encoded[which] ?? new Uint8Array()
      onlyProtocolErrors(bytes.subarray(0, cut % Math.max(1, bytes.length)))
    }), { numRuns: 300 })
  })

  it('valid encodings with flipped bytes', () => {
    fc.assert(fc.property(fc.nat(encoded.length - 1), fc.nat(), fc.integer({ min: 1, max: 255 }), (which, at, xor) => {
      const bytes = Uint8Array.from(encoded[which] ?? [])
      const i = at % bytes.length
      bytes[i] = (bytes[i] ?? 0) ^ xor
      onlyProtocolErrors(bytes)
    }), { numRuns: 300 })
  })

  it('mutated JSON: a node replaced or removed', () => {
    const values = encoded.map((b) => JSON.parse(new TextDecoder().decode(b)) as unknown)
    fc.assert(fc.property(
      fc.nat(values.length - 1), fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }),
      (which, path, replacement) => {
        const mutated = mutate(values[which], path, replacement)
        onlyProtocolErrors(utf8.encode(JSON.stringify(mutated)))
        try {
          validateMessage(mutated)
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError)
        }
      }
    ), { numRuns: 400 })
  })
})
