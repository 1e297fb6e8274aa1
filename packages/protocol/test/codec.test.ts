import { describe, expect, it } from 'vitest'
import {
  MAX_MESSAGE_BYTES, decodeMessage, decodeOffer, decodeVoucher, encodeMessage, toWire,
  validateJobEvent, validateLeaseDecision, validateMessage, validateOffer, validateOrder, validateTerminate,
  validateVoucher
} from '@gpumesh/protocol'
import { sampleMessages, sampleOffer, sampleOrder, sampleVoucher, T0 } from './samples.js'
import { protocolError } from './errors.js'

const utf8 = new TextEncoder()

/** Sets a value at a dotted path of a (wire-form) object copy. */
function withField (message: unknown, path: string, value: unknown): unknown {
  const copy = structuredClone(toWire(message)) as Record<string, unknown>
  const keys = path.split('.')
  let target: Record<string, unknown> = copy
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>
  const last = keys[keys.length - 1] ?? ''
  if (value === undefined) Reflect.deleteProperty(target, last)
  else target[last] = value
  return copy
}

describe('round trip', () => {
  for (const message of sampleMessages()) {
    it(`${message.type}${'kind' in message ? `/${message.kind}` : ''}${'accepted' in message ? `/${String(message.accepted)}` : ''}`, () => {
      const bytes = encodeMessage(message)
      expect(decodeMessage(bytes)).toEqual(message)
      expect(decodeMessage(bytes, [message.type])).toEqual(message)
      expect(validateMessage(JSON.parse(new TextDecoder().decode(bytes)))).toEqual(message)
    })
  }

  it('emits bigints as decimal strings and addresses checksummed', () => {
    const wire = JSON.parse(new TextDecoder().decode(encodeMessage(sampleVoucher()))) as Record<string, unknown>
    expect(wire.cumulativeAmount).toBe('1666664')
    expect(wire.sequence).toBe('4')
    const lower = withField(sampleVoucher(), 'renter', sampleVoucher().renter.toLowerCase())
    expect(validateVoucher(lower).renter).toBe(sampleVoucher().renter)
  })
})

describe('validators name the bad field', () => {
  const cases: Array<[string, () => unknown, string]> = [
    ['order gpuCount 0', () => validateOrder(withField(sampleOrder(), 'requirements.gpuCount', 0)), 'requirements.gpuCount'],
    ['order gpuCount fractional', () => validateOrder(withField(sampleOrder(), 'requirements.gpuCount', 1.5)), 'requirements.gpuCount'],
    ['order gpuCount unsafe', () => validateOrder(withField(sampleOrder(), 'requirements.gpuCount', 2 ** 60)), 'requirements.gpuCount'],
    ['order price 0', () => validateOrder(withField(sampleOrder(), 'maxPricePerGpuHour', '0')), 'maxPricePerGpuHour'],
    ['order price negative', () => validateOrder(withField(sampleOrder(), 'maxPricePerGpuHour', '-5')), 'maxPricePerGpuHour'],
    ['order price as number', () => validateOrder(withField(sampleOrder(), 'maxPricePerGpuHour', 5)), 'maxPricePerGpuHour'],
    ['order price leading zero', () => validateOrder(withField(sampleOrder(), 'maxPricePerGpuHour', '05')), 'maxPricePerGpuHour'],
    ['order price over uint256', () => validateOrder(withField(sampleOrder(), 'maxPricePerGpuHour', (2n ** 256n).toString())), 'maxPricePerGpuHour'],
    ['order renter not an address', () => validateOrder(withField(sampleOrder(), 'renter', '0x1234')), 'renter'],
    ['order renter bad checksum', () => validateOrder(withField(sampleOrder(), 'renter', sampleOrder().renter.replace(/[a-f]/, (c) => c.toUpperCase()))), 'renter'],
    ['order orderId uppercase', () => validateOrder(withField(sampleOrder(), 'orderId', sampleOrder().orderId.toUpperCase().replace('0X', '0x'))), 'orderId'],
    ['order jobHash short', () => validateOrder(withField(sampleOrder(), 'jobHash', '0xabcd')), 'jobHash'],
    ['order peer id', () => validateOrder(withField(sampleOrder(), 'renterPeerId', 'not a peer id')), 'renterPeerId'],
    ['order unknown field', () => validateOrder(withField(sampleOrder(), 'extra', 1)), 'extra'],
    ['order unknown nested field', () => validateOrder(withField(sampleOrder(), 'requirements.extra', 1)), 'requirements.extra'],
    ['order missing field', () => validateOrder(withField(sampleOrder(), 'durationSec', undefined)), 'durationSec'],
    ['order too many classes', () => validateOrder(withField(sampleOrder(), 'requirements.classes', Array(40).fill('X'))), 'requirements.classes'],
    ['order public key length', () => validateOrder(withField(sampleOrder(), 'signature.publicKey', '0x02ab')), 'signature.publicKey'],
    ['offer expiry before issue', () => validateOffer(withField(sampleOffer(), 'expiresAt', T0)), 'expiresAt'],
    ['offer binding other peer', () => validateOffer(withField(sampleOffer(), 'binding.peerId', '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN')), 'binding.peerId'],
    ['offer countFree > countTotal', () => validateOffer(withField(sampleOffer(), 'gpus.0.countFree', 9)), 'gpus.0.countFree'],
    ['offer no gpus', () => validateOffer(withField(sampleOffer(), 'gpus', [])), 'gpus'],
    ['offer long class', () => validateOffer(withField(sampleOffer(), 'gpus.0.class', 'x'.repeat(500))), 'gpus.0.class'],
    ['offer vendor', () => validateOffer(withField(sampleOffer(), 'gpus.0.vendor', 'intel')), 'gpus.0.vendor'],
    ['offer min > max lease', () => validateOffer(withField(sampleOffer(), 'minLeaseSec', 100_000)), 'maxLeaseSec'],
    ['offer fleet member', () => validateOffer(withField(sampleOffer(), 'fleet.member', sampleOrder().renter)), 'fleet.member'],
    ['voucher sequence over uint64', () => validateVoucher(withField(sampleVoucher(), 'sequence', (2n ** 64n).toString())), 'sequence'],
    ['voucher signature length', () => validateVoucher(withField(sampleVoucher(), 'signature.signature', '0x00')), 'signature.signature'],
    ['terminate empty reason', () => validateTerminate({ ...(toWire(sampleMessages().at(-1)) as object), reason: '' }), 'reason'],
    ['decision bad code', () => validateLeaseDecision({ type: 'lease-decision', accepted: false, orderId: null, code: 'NOPE', message: '' }), 'code'],
    ['log event without text', () => validateJobEvent({ type: 'job-event', leaseId: `0x${'a1'.repeat(32)}`, sequence: 1, at: 1, kind: 'log', stream: 'stdout' }), 'text'],
    ['started event with a report field', () => validateJobEvent({ type: 'job-event', leaseId: `0x${'a1'.repeat(32)}`, sequence: 1, at: 1, kind: 'started', exitCode: 0 }), 'exitCode']
  ]
  for (const [name, fn, field] of cases) {
    it(name, () => {
      const err = protocolError(fn)
      expect(err.code).toBe('INVALID_FIELD')
      expect(err.field).toBe(field)
    })
  }

  it('rejects a value of another type and non-objects as MALFORMED', () => {
    expect(protocolError(() => validateVoucher(toWire(sampleOrder()))).code).toBe('MALFORMED')
    expect(protocolError(() => validateMessage([])).code).toBe('MALFORMED')
    expect(protocolError(() => validateMessage({ type: 'nope' })).field).toBe('type')
  })

  it('checks expiry when given a time', () => {
    const offer = toWire(sampleOffer())
    expect(validateOffer(offer, { now: T0 }).sequence).toBe(42)
    const err = protocolError(() => validateOffer(offer, { now: T0 + 600_000 }))
    expect([err.code, err.field]).toEqual(['EXPIRED', 'expiresAt'])
    const order = protocolError(() => validateOrder(toWire(sampleOrder()), { now: T0 + 10_000_000 }))
    expect([order.code, order.field]).toEqual(['EXPIRED', 'expiresAt'])
  })
})

describe('decoding', () => {
  it('checks the size cap before parsing', () => {
    const huge = new Uint8Array(MAX_MESSAGE_BYTES.voucher + 1).fill(0x7b) // '{{{{…' would not parse
    expect(protocolError(() => decodeVoucher(huge)).code).toBe('TOO_LARGE')
    const padded = utf8.encode(JSON.stringify(toWire(sampleVoucher())) + ' '.repeat(MAX_MESSAGE_BYTES.voucher))
    expect(protocolError(() => decodeMessage(padded)).code).toBe('TOO_LARGE')
  })

  it('rejects bad UTF-8, bad JSON, non-objects and unexpected types', () => {
    expect(protocolError(() => decodeMessage(new Uint8Array([0x7b, 0xff, 0x7d]))).code).toBe('MALFORMED')
    expect(protocolError(() => decodeMessage(utf8.encode('{"type":'))).code).toBe('MALFORMED')
    expect(protocolError(() => decodeMessage(utf8.encode('[1]'))).code).toBe('MALFORMED')
    const err = protocolError(() => decodeOffer(encodeMessage(sampleVoucher())))
    expect([err.code, err.field]).toEqual(['MALFORMED', 'type'])
  })

  it('does not let __proto__ through', () => {
    const wire = toWire(sampleMessages()[5]) as { spec: { env: Record<string, string> } }
    const json = JSON.stringify(wire).replace('"WANDB_MODE"', '"__proto__"')
    const err = protocolError(() => decodeMessage(utf8.encode(json)))
    expect([err.code, err.field]).toEqual(['INVALID_FIELD', 'spec.env'])
    const top = JSON.stringify(toWire(sampleVoucher())).replace('{', '{"__proto__":{"x":1},')
    expect(protocolError(() => decodeMessage(utf8.encode(top))).field).toBe('__proto__')
  })

  it('encoding refuses invalid values', () => {
    const bad = { ...sampleVoucher(), cumulativeAmount: -1n }
    expect(protocolError(() => encodeMessage(bad)).field).toBe('cumulativeAmount')
  })
})
