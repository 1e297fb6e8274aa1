/**
 * Fleets on the wire: the operator's signed revocation of a member (gossiped on
 * FLEET_REVOCATIONS_TOPIC, kept by matchers) and the fleet protocol (FLEET_PROTOCOL), on which only
 * the operator may ask a member for its status or its newest vouchers.
 *
 * A fleet request is signed by the operator's payment key (EIP-712 `FleetRequest`, market domain)
 * over what it asks, the peer id that asks (so a request seen by someone else cannot be replayed from
 * another peer), the member it is meant for, a random nonce and a short validity. The member answers
 * only when the signer equals the operator of its own membership. Every message here is size-capped
 * before parsing and schema-checked after, like every other message.
 */
import { z } from 'zod'
import { LIMITS } from './constants.js'
import { jsonReplacer, parseJsonObject, parseWith } from './codec.js'
import { fleetRequestDigest, fleetRevocationDigest, marketDomain, type FleetRequestFields, type FleetRevocationFields } from './eip712.js'
import { ProtocolError } from './errors.js'
import { addressSchema, bytes32Schema, paymentSignatureSchema, peerIdSchema, timeSchema, uintSchema, amountSchema, positiveAmountSchema, voucherSchema } from './schemas.js'
import { signDigest, verifyDigest, type PaymentKey } from './signing.js'
import type { Address, Bytes32, Eip712Domain, PaymentSignature, Voucher } from './messages.js'

/** The request/response protocol between an operator and the members of its fleet. */
export const FLEET_PROTOCOL = '/gpumesh/fleet/1.0.0'
/** Where operators publish revocations; matchers keep them. */
export const FLEET_REVOCATIONS_TOPIC = '/gpumesh/fleet-revocations/1'

const KiB = 1024
/** Size caps in encoded bytes, checked before parsing. */
export const FLEET_MAX_BYTES = {
  revocation: 2 * KiB,
  request: 4 * KiB,
  status: 64 * KiB,
  vouchers: 512 * KiB
} as const
/** The longest validity a member accepts for a request (its issue time to its expiry). */
export const FLEET_REQUEST_MAX_VALIDITY_MS = 60_000
/** How far in the future a request's issue time may be (clock skew). */
export const FLEET_REQUEST_MAX_SKEW_MS = 30_000
/** Vouchers in one answer: the newest unredeemed one per lease, at most this many. */
export const MAX_FLEET_VOUCHERS = 200

export const FLEET_REQUEST_KINDS = ['status', 'vouchers'] as const
export type FleetRequestKind = typeof FLEET_REQUEST_KINDS[number]

/** The operator withdraws its vouching for one node: matchers drop its offers and refuse them afterwards. */
export interface FleetRevocation {
  type: 'fleet-revocation'
  operator: Address
  peerId: string
  revokedAt: number
  /** The chain of the market domain it is signed under (as the memberships it revokes). */
  chainId: bigint
  /** The operator's signature of `FleetRevocation`. */
  proof: PaymentSignature
}

export interface FleetRequest {
  type: 'fleet-request'
  kind: FleetRequestKind
  operator: Address
  /** The peer id that sends the request (the member checks it is the connection's). */
  asker: string
  /** The member's peer id. */
  member: string
  nonce: Bytes32
  issuedAt: number
  expiresAt: number
  /** The operator's signature of `FleetRequest`. */
  proof: PaymentSignature
}

export interface FleetGpuCount {
  state: string
  count: number
}

export interface FleetEarnings {
  token: Address
  chainId: bigint
  accrued: bigint
  vouchered: bigint
  redeemed: bigint
  outstanding: bigint
}

/** A member's answer to `status`. */
export interface FleetStatus {
  type: 'fleet-status'
  peerId: string
  member: Address
  /** The gpumesh version the daemon runs. */
  version: string
  startedAt: number | null
  gpus: FleetGpuCount[]
  activeLeases: number
  earnings: FleetEarnings[]
  lastError: { at: number, message: string } | null
  /** Why no offer is out, or null. */
  offerProblem: string | null
}

/** A member's answer to `vouchers`: the newest voucher of each lease above what was redeemed. */
export interface FleetVouchers {
  type: 'fleet-vouchers'
  peerId: string
  member: Address
  escrow: Address
  chainId: bigint
  vouchers: Voucher[]
}

const str = (max: number): z.ZodString => z.string().min(1).max(max)

export const fleetRevocationSchema: z.ZodType<FleetRevocation> = z.strictObject({
  type: z.literal('fleet-revocation'),
  operator: addressSchema,
  peerId: peerIdSchema,
  revokedAt: timeSchema,
  chainId: positiveAmountSchema,
  proof: paymentSignatureSchema
})

export const fleetRequestSchema: z.ZodType<FleetRequest> = z.strictObject({
  type: z.literal('fleet-request'),
  kind: z.enum(FLEET_REQUEST_KINDS),
  operator: addressSchema,
  asker: peerIdSchema,
  member: peerIdSchema,
  nonce: bytes32Schema,
  issuedAt: timeSchema,
  expiresAt: timeSchema,
  proof: paymentSignatureSchema
}).superRefine((r, ctx) => {
  if (r.expiresAt <= r.issuedAt) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'expires before it is issued', input: r.expiresAt })
  if (r.expiresAt - r.issuedAt > FLEET_REQUEST_MAX_VALIDITY_MS) {
    ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: `valid for more than ${FLEET_REQUEST_MAX_VALIDITY_MS} ms`, input: r.expiresAt })
  }
})

const fleetEarningsSchema: z.ZodType<FleetEarnings> = z.strictObject({
  token: addressSchema,
  chainId: positiveAmountSchema,
  accrued: amountSchema,
  vouchered: amountSchema,
  redeemed: amountSchema,
  outstanding: amountSchema
})

export const fleetStatusSchema: z.ZodType<FleetStatus> = z.strictObject({
  type: z.literal('fleet-status'),
  peerId: peerIdSchema,
  member: addressSchema,
  version: str(LIMITS.shortString),
  startedAt: timeSchema.nullable(),
  gpus: z.array(z.strictObject({ state: str(LIMITS.shortString), count: uintSchema })).max(16),
  activeLeases: uintSchema,
  earnings: z.array(fleetEarningsSchema).max(16),
  lastError: z.strictObject({ at: timeSchema, message: str(LIMITS.message) }).nullable(),
  offerProblem: str(LIMITS.message).nullable()
})

export const fleetVouchersSchema: z.ZodType<FleetVouchers> = z.strictObject({
  type: z.literal('fleet-vouchers'),
  peerId: peerIdSchema,
  member: addressSchema,
  escrow: addressSchema,
  chainId: positiveAmountSchema,
  vouchers: z.array(voucherSchema).max(MAX_FLEET_VOUCHERS)
})

const utf8Encoder = new TextEncoder()

function encodeCapped (value: { type: string }, schema: z.ZodType<unknown>, cap: number): Uint8Array {
  const json = JSON.stringify(value, jsonReplacer)
  const bytes = utf8Encoder.encode(json)
  if (bytes.byteLength > cap) throw new ProtocolError('TOO_LARGE', `${value.type} of ${bytes.byteLength} bytes exceeds ${cap}`)
  parseWith(schema, JSON.parse(json))
  return bytes
}

function decodeCapped<T> (bytes: Uint8Array, schema: z.ZodType<T>, cap: number): T {
  return parseWith(schema, parseJsonObject(bytes, cap))
}

export const encodeFleetRevocation = (m: FleetRevocation): Uint8Array => encodeCapped(m, fleetRevocationSchema, FLEET_MAX_BYTES.revocation)
export const decodeFleetRevocation = (b: Uint8Array): FleetRevocation => decodeCapped(b, fleetRevocationSchema, FLEET_MAX_BYTES.revocation)
export const validateFleetRevocation = (input: unknown): FleetRevocation => parseWith(fleetRevocationSchema, input)
export const encodeFleetRequest = (m: FleetRequest): Uint8Array => encodeCapped(m, fleetRequestSchema, FLEET_MAX_BYTES.request)
export const decodeFleetRequest = (b: Uint8Array): FleetRequest => decodeCapped(b, fleetRequestSchema, FLEET_MAX_BYTES.request)
export const encodeFleetStatus = (m: FleetStatus): Uint8Array => encodeCapped(m, fleetStatusSchema, FLEET_MAX_BYTES.status)
export const decodeFleetStatus = (b: Uint8Array): FleetStatus => decodeCapped(b, fleetStatusSchema, FLEET_MAX_BYTES.status)
export const encodeFleetVouchers = (m: FleetVouchers): Uint8Array => encodeCapped(m, fleetVouchersSchema, FLEET_MAX_BYTES.vouchers)
export const decodeFleetVouchers = (b: Uint8Array): FleetVouchers => decodeCapped(b, fleetVouchersSchema, FLEET_MAX_BYTES.vouchers)

/** Signs a revocation under the market domain of `chainId`. */
export function signFleetRevocation (fields: FleetRevocationFields, key: PaymentKey, chainId: bigint): FleetRevocation {
  return { type: 'fleet-revocation', ...fields, chainId, proof: signDigest(fleetRevocationDigest(fields, marketDomain(chainId)), key) }
}
export function verifyFleetRevocation (revocation: FleetRevocation): Address {
  return verifyDigest(fleetRevocationDigest(revocation, marketDomain(revocation.chainId)), revocation.proof, revocation.operator, 'proof')
}

export function signFleetRequest (fields: Omit<FleetRequestFields, 'kind'> & { kind: FleetRequestKind }, key: PaymentKey, domain: Eip712Domain): FleetRequest {
  return { type: 'fleet-request', ...fields, proof: signDigest(fleetRequestDigest(fields, domain), key) }
}

/** Why a member refuses a fleet request (the reason code on the wire). */
export type FleetRequestRefusal = 'WRONG_ASKER' | 'WRONG_MEMBER' | 'NOT_OPERATOR' | 'EXPIRED' | 'FROM_THE_FUTURE' | 'BAD_SIGNATURE' | 'REPLAYED'

/**
 * A member's check of a decoded request: sent by the peer it names, meant for this member, signed by
 * this member's operator under the market domain, and valid now. Returns null when it holds, else why
 * not. (Replays within the validity are the caller's to refuse: it remembers nonces until they expire.)
 */
export function checkFleetRequest (request: FleetRequest, context: { asker: string, member: string, operator: Address, domain: Eip712Domain, now: number }): FleetRequestRefusal | null {
  if (request.asker !== context.asker) return 'WRONG_ASKER'
  if (request.member !== context.member) return 'WRONG_MEMBER'
  if (request.operator.toLowerCase() !== context.operator.toLowerCase()) return 'NOT_OPERATOR'
  if (request.expiresAt <= context.now) return 'EXPIRED'
  if (request.issuedAt > context.now + FLEET_REQUEST_MAX_SKEW_MS) return 'FROM_THE_FUTURE'
  try {
    verifyDigest(fleetRequestDigest(request, context.domain), request.proof, request.operator, 'proof')
  } catch {
    return 'BAD_SIGNATURE'
  }
  return null
}

/** How long into the future a revocation's time may be (clock skew). */
export const FLEET_REVOCATION_MAX_SKEW_MS = 60_000

export interface FleetRevocationVerdict {
  judgement: 'accept' | 'reject' | 'ignore'
  reason: 'VALID' | 'TOO_LARGE' | 'MALFORMED' | 'INVALID_FIELD' | 'BAD_SIGNATURE' | 'FROM_THE_FUTURE'
  revocation: FleetRevocation | null
}

/**
 * Judges a revocation received on FLEET_REVOCATIONS_TOPIC: decoded, capped and schema-checked, signed
 * by the operator it names (under the market domain of its `chainId`), and not dated in the future.
 * Anyone may relay a revocation: it speaks for the operator whose key signed it, not for its sender.
 */
export function judgeFleetRevocation (data: Uint8Array, now: number): FleetRevocationVerdict {
  let revocation: FleetRevocation
  try {
    revocation = decodeFleetRevocation(data)
  } catch (err) {
    const code = err instanceof ProtocolError ? err.code : 'MALFORMED'
    return { judgement: 'reject', reason: code === 'TOO_LARGE' ? 'TOO_LARGE' : code === 'MALFORMED' ? 'MALFORMED' : 'INVALID_FIELD', revocation: null }
  }
  try {
    verifyFleetRevocation(revocation)
  } catch {
    return { judgement: 'reject', reason: 'BAD_SIGNATURE', revocation }
  }
  if (revocation.revokedAt > now + FLEET_REVOCATION_MAX_SKEW_MS) return { judgement: 'ignore', reason: 'FROM_THE_FUTURE', revocation }
  return { judgement: 'accept', reason: 'VALID', revocation }
}
