/** The job protocol's own messages: job-reply, artifacts-request, artifacts-header (round trips, refusals, caps, fuzz). */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  JOB_DATA_FRAME_BYTES, JOB_MAX_FRAME_BYTES, JOB_REPLY_CODES, MAX_MESSAGE_BYTES, ProtocolError, decodeArtifactsHeader,
  decodeArtifactsRequest, decodeJobReply, decodeMessage, encodeArtifactsHeader, encodeArtifactsRequest, encodeJobReply,
  encodeMessage, toWire, type ArtifactsHeader, type ArtifactsRequest, type JobReply
} from '@gpumesh/protocol'
import { sampleJobAuth } from './samples.js'

const utf8 = new TextEncoder()
const bytesOf = (value: unknown): Uint8Array => utf8.encode(JSON.stringify(value))

function codeOf (run: () => unknown): string {
  try {
    run()
  } catch (err) {
    if (err instanceof ProtocolError) return `${err.code}${err.field == null ? '' : `:${err.field}`}`
    throw err
  }
  return 'OK'
}

const replies: JobReply[] = [
  { type: 'job-reply', subject: 'submit', ok: true, code: null, message: null },
  { type: 'job-reply', subject: 'voucher', ok: false, code: 'AMOUNT_ABOVE_REPORTED', message: 'cumulative amount 5 is above the 4 reported' },
  { type: 'job-reply', subject: 'attach', ok: false, code: 'NOT_RENTER', message: 'only the lease\'s renter may attach' },
  { type: 'job-reply', subject: 'keepalive', ok: true, code: null, message: null }
]
const request: ArtifactsRequest = { type: 'artifacts-request', auth: sampleJobAuth() }
const headers: ArtifactsHeader[] = [
  { type: 'artifacts-header', ok: true, size: 12_345, sha256: `0x${'ab'.repeat(32)}` },
  { type: 'artifacts-header', ok: false, code: 'EXPIRED_ARTIFACTS', message: 'removed after the retention time' }
]

describe('job protocol messages', () => {
  it('round-trips job-reply, artifacts-request and artifacts-header', () => {
    for (const reply of replies) {
      expect(decodeJobReply(encodeJobReply(reply))).toEqual(reply)
      expect(decodeMessage(encodeMessage(reply))).toEqual(reply)
    }
    expect(decodeArtifactsRequest(encodeArtifactsRequest(request))).toEqual(request)
    for (const header of headers) expect(decodeArtifactsHeader(encodeArtifactsHeader(header))).toEqual(header)
  })

  it('refuses inconsistent or unknown fields, naming them', () => {
    const ok = toWire(replies[0]) as Record<string, unknown>
    expect(codeOf(() => decodeJobReply(bytesOf({ ...ok, code: 'NOT_RENTER' })))).toBe('INVALID_FIELD:code')
    expect(codeOf(() => decodeJobReply(bytesOf({ ...ok, ok: false })))).toBe('INVALID_FIELD:code')
    expect(codeOf(() => decodeJobReply(bytesOf({ ...ok, ok: false, code: 'lower case' })))).toBe('INVALID_FIELD:code')
    expect(codeOf(() => decodeJobReply(bytesOf({ ...ok, subject: 'other' })))).toBe('INVALID_FIELD:subject')
    expect(codeOf(() => decodeJobReply(bytesOf({ ...ok, extra: 1 })))).toBe('INVALID_FIELD:extra')
    expect(codeOf(() => decodeJobReply(bytesOf({ ...ok, message: 'x'.repeat(1025) })))).toBe('INVALID_FIELD:message')
    const header = toWire(headers[0]) as Record<string, unknown>
    expect(codeOf(() => decodeArtifactsHeader(bytesOf({ ...header, size: -1 })))).toBe('INVALID_FIELD:size')
    expect(codeOf(() => decodeArtifactsHeader(bytesOf({ ...header, sha256: '0x12' })))).toBe('INVALID_FIELD:sha256')
    expect(codeOf(() => decodeArtifactsHeader(bytesOf({ type: 'artifacts-header', ok: false, code: 'NOPE', message: '' })))).toBe('INVALID_FIELD:code')
    const wireRequest = toWire(request) as { auth: { peerId: string } }
    expect(codeOf(() => decodeArtifactsRequest(bytesOf({ ...wireRequest, auth: { ...wireRequest.auth, peerId: 'x' } })))).toBe('INVALID_FIELD:auth.peerId')
    expect(codeOf(() => decodeArtifactsRequest(encodeJobReply(replies[0] as JobReply)))).toBe('MALFORMED:type')
  })

  it('caps each type before parsing; data frames fit the job frame cap', () => {
    expect(MAX_MESSAGE_BYTES['job-reply']).toBe(4096)
    expect(MAX_MESSAGE_BYTES['artifacts-request']).toBe(4096)
    expect(MAX_MESSAGE_BYTES['artifacts-header']).toBe(4096)
    expect(codeOf(() => decodeJobReply(new Uint8Array(4097).fill(0x7b)))).toBe('TOO_LARGE')
    expect(JOB_MAX_FRAME_BYTES).toBeGreaterThanOrEqual(JOB_DATA_FRAME_BYTES)
    expect(JOB_MAX_FRAME_BYTES).toBeGreaterThanOrEqual(MAX_MESSAGE_BYTES['job-submit'])
    expect(JOB_REPLY_CODES).toEqual(expect.arrayContaining(['NOT_RENTER', 'BAD_AUTH', 'WRONG_STATE', 'HASH_MISMATCH', 'TOO_LARGE',
      'RUNNER_DISABLED', 'NO_SUCH_LEASE', 'NOT_FINISHED', 'EXPIRED_ARTIFACTS']))
  })

  it('random bytes and mutated JSON only ever throw ProtocolError', () => {
    const decoders = [decodeJobReply, decodeArtifactsRequest, decodeArtifactsHeader]
    const samples = [...replies.map((r) => encodeJobReply(r)), encodeArtifactsRequest(request), ...headers.map((h) => encodeArtifactsHeader(h))]
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(samples.length - 1), fc.nat(), (noise, pick, at) => {
      const base = samples[pick] as Uint8Array
      const mutated = new Uint8Array(base)
      for (let i = 0; i < noise.length && i < 4; i++) mutated[(at + i * 7) % mutated.length] = noise[i] as number
      for (const bytes of [noise, mutated, base.subarray(0, at % base.length)]) {
        for (const decode of decoders) {
          try { decode(bytes) } catch (err) { expect(err).toBeInstanceOf(ProtocolError) }
        }
      }
    }), { numRuns: 300 })
  })
})
