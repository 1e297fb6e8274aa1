/** Fleet messages: revocations and the operator's requests, their caps, schemas and checks. */
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  FLEET_MAX_BYTES, ProtocolError, bytesToHex, checkFleetRequest, decodeFleetRequest, decodeFleetRevocation, decodeFleetStatus,
  decodeFleetVouchers, encodeFleetRequest, encodeFleetRevocation, encodeFleetStatus, judgeFleetRevocation, marketDomain,
  paymentKeyAddress, signFleetRequest, signFleetRevocation, type Bytes32, type FleetStatus
} from '@gpumesh/protocol'

const CHAIN = 31337n
const DOMAIN = marketDomain(CHAIN)
const OPERATOR_KEY = Wallet.createRandom().privateKey
const OPERATOR = paymentKeyAddress(OPERATOR_KEY)
const ASKER = '12D3KooWGzh6Sr4AQHmmJYT7HtjLxaD2PRcCqq2SsQ8mMPV9bQMa'
const MEMBER = '12D3KooWRBhwfeP2Y7TCx1SM6s5AMJRaoz5WKaJYuWK2nNnTQ3k7'
const NOW = 1_800_000_000_000
const utf8 = new TextEncoder()

const request = (overrides: Partial<{ issuedAt: number, expiresAt: number, key: string, operator: `0x${string}` }> = {}): ReturnType<typeof signFleetRequest> => {
  const issuedAt = overrides.issuedAt ?? NOW
  const fields = { kind: 'status' as const, operator: overrides.operator ?? OPERATOR, asker: ASKER, member: MEMBER, nonce: bytesToHex(randomBytes(32)) as Bytes32, issuedAt, expiresAt: overrides.expiresAt ?? issuedAt + 30_000 }
  return signFleetRequest(fields, overrides.key ?? OPERATOR_KEY, DOMAIN)
}
const context = { asker: ASKER, member: MEMBER, operator: OPERATOR, domain: DOMAIN, now: NOW + 1_000 }

describe('fleet requests', () => {
  it('round-trips and passes the member\'s check only for its operator, asker, member and time', () => {
    const r = request()
    const decoded = decodeFleetRequest(encodeFleetRequest(r))
    expect(decoded).toEqual(r)
    expect(checkFleetRequest(decoded, context)).toBeNull()
    expect(checkFleetRequest(decoded, { ...context, asker: MEMBER })).toBe('WRONG_ASKER')
    expect(checkFleetRequest(decoded, { ...context, member: ASKER })).toBe('WRONG_MEMBER')
    expect(checkFleetRequest(decoded, { ...context, operator: Wallet.createRandom().address as `0x${string}` })).toBe('NOT_OPERATOR')
    expect(checkFleetRequest(decoded, { ...context, now: NOW + 30_000 })).toBe('EXPIRED')
    expect(checkFleetRequest(decoded, { ...context, now: NOW - 60_000 })).toBe('FROM_THE_FUTURE')
    expect(checkFleetRequest(decoded, { ...context, domain: marketDomain(1n) })).toBe('BAD_SIGNATURE')
    // Claims the operator, signed by another key.
    expect(checkFleetRequest(request({ key: Wallet.createRandom().privateKey }), context)).toBe('BAD_SIGNATURE')
    // The signed fields cannot be changed after signing.
    expect(checkFleetRequest({ ...decoded, kind: 'vouchers' }, context)).toBe('BAD_SIGNATURE')
  })

  it('refuses a validity over a minute, unknown fields and oversize bytes, before any signature work', () => {
    const long = request({ expiresAt: NOW + 61_000 })
    expect(() => decodeFleetRequest(utf8.encode(JSON.stringify({ ...long })))).toThrow(expect.objectContaining({ code: 'INVALID_FIELD', field: 'expiresAt' }))
    const extra = JSON.parse(new TextDecoder().decode(encodeFleetRequest(request()))) as Record<string, unknown>
    expect(() => decodeFleetRequest(utf8.encode(JSON.stringify({ ...extra, admin: true })))).toThrow(expect.objectContaining({ code: 'INVALID_FIELD' }))
    expect(() => decodeFleetRequest(new Uint8Array(FLEET_MAX_BYTES.request + 1))).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }))
  })

  it('decoders throw only ProtocolErrors, whatever the bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), fc.string({ maxLength: 300 }), (bytes, text) => {
      for (const input of [bytes, utf8.encode(text)]) {
        for (const decode of [decodeFleetRequest, decodeFleetRevocation, decodeFleetStatus, decodeFleetVouchers]) {
          try { decode(input) } catch (err) { expect(err).toBeInstanceOf(ProtocolError) }
        }
      }
    }), { numRuns: 300 })
  })
})

describe('fleet revocations', () => {
  it('are accepted when signed by the operator they name, rejected when forged, ignored when dated ahead', () => {
    const r = signFleetRevocation({ operator: OPERATOR, peerId: MEMBER, revokedAt: NOW }, OPERATOR_KEY, CHAIN)
    expect(judgeFleetRevocation(encodeFleetRevocation(r), NOW)).toMatchObject({ judgement: 'accept', reason: 'VALID', revocation: r })
    const forged = { ...signFleetRevocation({ operator: OPERATOR, peerId: MEMBER, revokedAt: NOW }, Wallet.createRandom().privateKey, CHAIN), operator: OPERATOR }
    expect(judgeFleetRevocation(encodeFleetRevocation(forged), NOW)).toMatchObject({ judgement: 'reject', reason: 'BAD_SIGNATURE' })
    // Signed for another chain than the one it claims.
    expect(judgeFleetRevocation(encodeFleetRevocation({ ...r, chainId: 1n }), NOW)).toMatchObject({ judgement: 'reject', reason: 'BAD_SIGNATURE' })
    const ahead = signFleetRevocation({ operator: OPERATOR, peerId: MEMBER, revokedAt: NOW + 3_600_000 }, OPERATOR_KEY, CHAIN)
    expect(judgeFleetRevocation(encodeFleetRevocation(ahead), NOW)).toMatchObject({ judgement: 'ignore', reason: 'FROM_THE_FUTURE' })
    expect(judgeFleetRevocation(utf8.encode('{"type":"fleet-revocation"'), NOW)).toMatchObject({ judgement: 'reject', reason: 'MALFORMED' })
    expect(judgeFleetRevocation(new Uint8Array(FLEET_MAX_BYTES.revocation + 1), NOW)).toMatchObject({ judgement: 'reject', reason: 'TOO_LARGE' })
  })
})

describe('fleet status', () => {
  it('round-trips with its money as bigints and refuses a status past its cap', () => {
    const status: FleetStatus = {
      type: 'fleet-status', peerId: MEMBER, member: OPERATOR, version: '0.1.0', startedAt: NOW,
      gpus: [{ state: 'free', count: 6 }], activeLeases: 2,
      earnings: [{ token: OPERATOR, chainId: CHAIN, accrued: 10n ** 30n, vouchered: 1n, redeemed: 0n, outstanding: 5n }],
      lastError: { at: NOW, message: 'probe failed' }, offerProblem: null
    }
    expect(decodeFleetStatus(encodeFleetStatus(status))).toEqual(status)
    expect(() => encodeFleetStatus({ ...status, lastError: { at: NOW, message: 'x'.repeat(70_000) } })).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }))
  })
})
