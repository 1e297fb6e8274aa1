import { decodeEnvelope, encodeErrorEnvelope, encodeOkEnvelope, encodeVarint, generatePeerKey, PeerKeyError, peerKeyFromBytes, peerKeyToBytes } from '@gpumesh/net'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { decodeVarint } from '../src/frame-codec.js'

describe('frame codec', () => {
  it('round-trips varints', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 35 - 1 }), (n) => {
      const decoded = decodeVarint(new Uint8ArrayList(encodeVarint(n)))
      expect(decoded).toEqual({ kind: 'value', value: n, bytes: encodeVarint(n).byteLength })
    }))
    expect(Array.from(encodeVarint(300))).toEqual([0xac, 0x02])
    expect(decodeVarint(new Uint8ArrayList(Uint8Array.of(0x80)))).toEqual({ kind: 'incomplete' })
    expect(decodeVarint(new Uint8ArrayList(new Uint8Array(6).fill(0x80)))).toEqual({ kind: 'invalid' })
  })

  it('round-trips envelopes and rejects junk', () => {
    expect(decodeEnvelope(encodeOkEnvelope(Uint8Array.of(7, 8)).subarray())).toEqual({ status: 'ok', payload: Uint8Array.of(7, 8) })
    expect(decodeEnvelope(encodeErrorEnvelope('RATE_LIMITED', 'slow down').subarray()))
      .toEqual({ status: 'error', code: 'RATE_LIMITED', message: 'slow down' })
    fc.assert(fc.property(fc.uint8Array(), (junk) => {
      const envelope = decodeEnvelope(junk)
      if (envelope != null) expect(['ok', 'error']).toContain(envelope.status)
    }))
    expect(decodeEnvelope(Uint8Array.of(1, 0x7b))).toBeUndefined()
    expect(decodeEnvelope(Uint8Array.of(9))).toBeUndefined()
  })
})

describe('peer keys', () => {
  it('persist and restore to the same peer id', async () => {
    const key = await generatePeerKey()
    const restored = peerKeyFromBytes(peerKeyToBytes(key))
    expect(peerIdFromPrivateKey(restored).equals(peerIdFromPrivateKey(key))).toBe(true)
  })

  it('refuse garbage with PeerKeyError', () => {
    expect(() => peerKeyFromBytes(Uint8Array.of(1, 2, 3))).toThrow(PeerKeyError)
  })
})
