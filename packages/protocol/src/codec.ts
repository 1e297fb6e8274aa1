/**
 * The one encoding of every message: UTF-8 JSON, bigints as decimal strings, bytes as lowercase 0x-hex.
 * Decoding checks the size cap before anything is parsed, then parses, then validates; only values
 * that passed all three leave this file.
 */
import type { z } from 'zod'
import { MAX_ANY_MESSAGE_BYTES, MAX_MESSAGE_BYTES, MESSAGE_TYPES } from './constants.js'
import { ProtocolError } from './errors.js'
import {
  artifactsHeaderSchema, artifactsRequestSchema, jobReplySchema, bookPageSchema, bookQuerySchema, fleetMembershipSchema, jobAttachSchema, jobAuthSchema, jobEventSchema, jobSubmitSchema, leaseDecisionSchema,
  leaseProposalSchema, leaseTermsSchema, offerSchema, orderRequirementsSchema, orderSchema, peerBindingSchema,
  orderResultSchema, paymentSignatureSchema, signedUsageReportSchema, terminateSchema, usageReportSchema, voucherSchema
} from './schemas.js'
import type { MessageType } from './constants.js'
import type {
  ArtifactsHeader, ArtifactsRequest, JobReply, BookPage, BookQuery, FleetMembership, JobAttach, JobAuth, JobEvent, JobSubmit, LeaseDecision, LeaseProposal, LeaseTerms, Message,
  MessageOfType, Offer, Order, OrderRequirements, OrderResult, PaymentSignature, PeerBinding, SignedUsageReport, Terminate, UsageReport, Voucher
} from './messages.js'

export interface ValidateOptions {
  /** When given (Unix ms), anything whose `expiresAt` is not after it fails with code EXPIRED. */
  now?: number
}

const SCHEMAS: { [T in MessageType]: z.ZodType<MessageOfType<T>> } = {
  offer: offerSchema,
  order: orderSchema,
  'lease-proposal': leaseProposalSchema,
  'lease-decision': leaseDecisionSchema,
  'job-submit': jobSubmitSchema,
  'job-attach': jobAttachSchema,
  'job-event': jobEventSchema,
  voucher: voucherSchema,
  terminate: terminateSchema,
  'order-result': orderResultSchema,
  'book-query': bookQuerySchema,
  'book-page': bookPageSchema,
  'job-reply': jobReplySchema,
  'artifacts-request': artifactsRequestSchema,
  'artifacts-header': artifactsHeaderSchema
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const utf8Encoder = new TextEncoder()

/** `JSON.stringify` replacer for the wire form: bigints become decimal strings. */
export function jsonReplacer (_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}

/** The JSON value of a message or part of one, as it appears on the wire. */
export function toWire (value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, jsonReplacer))
}

/**
 * Deterministic JSON: keys sorted (by UTF-16 code units) at every level, no whitespace, bigints as
 * decimal strings, `undefined` members left out. What content hashes are computed over.
 */
export function canonicalJson (value: unknown): string {
  if (value === null) return 'null'
  switch (typeof value) {
    case 'bigint': return `"${value.toString()}"`
    case 'string': case 'boolean': return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new ProtocolError('INVALID_FIELD', 'not a finite number')
      return JSON.stringify(value)
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`
      const record = value as Record<string, unknown>
      const parts: string[] = []
      for (const key of Object.keys(record).sort()) {
        const member = record[key]
        if (member === undefined) continue
        parts.push(`${JSON.stringify(key)}:${canonicalJson(member)}`)
      }
      return `{${parts.join(',')}}`
    }
    default: throw new ProtocolError('INVALID_FIELD', `cannot encode a ${typeof value}`)
  }
}

function fieldPath (path: readonly PropertyKey[]): string | null {
  return path.length === 0 ? null : path.map(String).join('.')
}

/** Maps a zod failure to a ProtocolError naming the first offending field. */
function toProtocolError (error: z.ZodError, prefix: string | null): ProtocolError {
  const issue = error.issues[0]
  let path: PropertyKey[] = issue == null ? [] : [...issue.path]
  if (issue?.code === 'unrecognized_keys' && issue.keys[0] != null) path = [...path, issue.keys[0]]
  const inner = fieldPath(path)
  const field = prefix == null ? inner : inner == null ? prefix : `${prefix}.${inner}`
  const detail = issue == null ? 'invalid' : issue.message
  return new ProtocolError('INVALID_FIELD', `${field ?? 'message'}: ${detail}`, { field, cause: error })
}

/** Runs a schema over an untrusted value; throws ProtocolError (INVALID_FIELD) naming the field. */
export function parseWith<T> (schema: z.ZodType<T>, input: unknown, prefix: string | null = null): T {
  const result = schema.safeParse(input)
  if (!result.success) throw toProtocolError(result.error, prefix)
  return result.data
}

function checkNotExpired (expiresAt: number, now: number | undefined, field: string): void {
  if (now !== undefined && expiresAt <= now) {
    throw new ProtocolError('EXPIRED', `${field} ${expiresAt} is not after ${now}`, { field })
  }
}

function checkFresh (message: Message, now: number | undefined): void {
  if (now === undefined) return
  switch (message.type) {
    case 'offer':
      checkNotExpired(message.expiresAt, now, 'expiresAt')
      if (message.fleet != null) checkNotExpired(message.fleet.expiresAt, now, 'fleet.expiresAt')
      break
    case 'order': checkNotExpired(message.expiresAt, now, 'expiresAt'); break
    case 'lease-proposal': checkNotExpired(message.order.expiresAt, now, 'order.expiresAt'); break
    default: break
  }
}

function validateMessageOfType<T extends MessageType> (type: T, input: unknown, options: ValidateOptions): MessageOfType<T> {
  const message = parseWith(SCHEMAS[type], input)
  checkFresh(message, options.now)
  return message
}

function isMessageType (value: unknown): value is MessageType {
  return typeof value === 'string' && (MESSAGE_TYPES as readonly string[]).includes(value)
}

/** Validates any top-level message by its `type`. */
export function validateMessage (input: unknown, options: ValidateOptions = {}): Message {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ProtocolError('MALFORMED', 'a message is a JSON object')
  }
  const type = (input as { type?: unknown }).type
  if (!isMessageType(type)) throw new ProtocolError('MALFORMED', 'unknown message type', { field: 'type' })
  return validateMessageOfType(type, input, options)
}

/**
 * Encodes a message. The value is validated on the way (an invalid message is a bug here, not a surprise
 * at the peer), so this throws ProtocolError (INVALID_FIELD, TOO_LARGE) like decoding does.
 */
export function encodeMessage (message: Message): Uint8Array {
  const json = JSON.stringify(message, jsonReplacer)
  const bytes = utf8Encoder.encode(json)
  const type = (message as { type?: unknown }).type
  if (!isMessageType(type)) throw new ProtocolError('MALFORMED', 'unknown message type', { field: 'type' })
  if (bytes.byteLength > MAX_MESSAGE_BYTES[type]) {
    throw new ProtocolError('TOO_LARGE', `${type} of ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES[type]}`)
  }
  validateMessageOfType(type, JSON.parse(json), {})
  return bytes
}

/**
 * The first step of decoding any message: at most `cap` bytes (checked before parsing), UTF-8 JSON, an
 * object. Throws ProtocolError (TOO_LARGE, MALFORMED).
 */
export function parseJsonObject (bytes: Uint8Array, cap: number): object {
  if (bytes.byteLength > cap) throw new ProtocolError('TOO_LARGE', `message of ${bytes.byteLength} bytes exceeds ${cap}`)
  let input: unknown
  try {
    input = JSON.parse(utf8Decoder.decode(bytes))
  } catch (err) {
    throw new ProtocolError('MALFORMED', 'not UTF-8 JSON', { cause: err })
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ProtocolError('MALFORMED', 'a message is a JSON object')
  }
  return input
}

/**
 * Decodes and validates one message. The size cap (of the expected types, or the largest of all) is
 * checked before parsing, the cap of the actual type after. Throws only ProtocolError.
 */
export function decodeMessage<T extends MessageType = MessageType> (
  bytes: Uint8Array,
  expectedTypes?: readonly T[],
  options: ValidateOptions = {}
): MessageOfType<T> {
  const types: readonly MessageType[] = expectedTypes ?? MESSAGE_TYPES
  let cap = 0
  for (const type of types) cap = Math.max(cap, MAX_MESSAGE_BYTES[type] ?? 0)
  if (expectedTypes === undefined) cap = MAX_ANY_MESSAGE_BYTES
  const input = parseJsonObject(bytes, cap)
  const type = (input as { type?: unknown }).type
  if (!isMessageType(type) || !types.includes(type)) {
    throw new ProtocolError('MALFORMED', `unexpected message type ${JSON.stringify(type) ?? 'undefined'}`, { field: 'type' })
  }
  if (bytes.byteLength > MAX_MESSAGE_BYTES[type]) {
    throw new ProtocolError('TOO_LARGE', `${type} of ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES[type]}`)
  }
  return validateMessageOfType(type, input, options) as MessageOfType<T>
}

const decoder = <T extends MessageType>(type: T) =>
  (bytes: Uint8Array, options: ValidateOptions = {}): MessageOfType<T> => decodeMessage(bytes, [type], options)

const validator = <T extends MessageType>(type: T) =>
  (input: unknown, options: ValidateOptions = {}): MessageOfType<T> => {
    if (typeof input !== 'object' || input === null || (input as { type?: unknown }).type !== type) {
      throw new ProtocolError('MALFORMED', `expected a ${type} message`, { field: 'type' })
    }
    return validateMessageOfType(type, input, options)
  }

type Decoder<T extends MessageType> = (bytes: Uint8Array, options?: ValidateOptions) => MessageOfType<T>
type Validator<T extends MessageType> = (input: unknown, options?: ValidateOptions) => MessageOfType<T>

export const decodeOffer: Decoder<'offer'> = decoder('offer')
export const decodeOrder: Decoder<'order'> = decoder('order')
export const decodeLeaseProposal: Decoder<'lease-proposal'> = decoder('lease-proposal')
export const decodeLeaseDecision: Decoder<'lease-decision'> = decoder('lease-decision')
export const decodeJobSubmit: Decoder<'job-submit'> = decoder('job-submit')
export const decodeJobAttach: Decoder<'job-attach'> = decoder('job-attach')
export const decodeJobEvent: Decoder<'job-event'> = decoder('job-event')
export const decodeVoucher: Decoder<'voucher'> = decoder('voucher')
export const decodeTerminate: Decoder<'terminate'> = decoder('terminate')
export const decodeOrderResult: Decoder<'order-result'> = decoder('order-result')
export const decodeBookQuery: Decoder<'book-query'> = decoder('book-query')
export const decodeBookPage: Decoder<'book-page'> = decoder('book-page')
export const decodeJobReply: Decoder<'job-reply'> = decoder('job-reply')
export const decodeArtifactsRequest: Decoder<'artifacts-request'> = decoder('artifacts-request')
export const decodeArtifactsHeader: Decoder<'artifacts-header'> = decoder('artifacts-header')

export const validateOffer: Validator<'offer'> = validator('offer')
export const validateOrder: Validator<'order'> = validator('order')
export const validateLeaseProposal: Validator<'lease-proposal'> = validator('lease-proposal')
export const validateLeaseDecision: Validator<'lease-decision'> = validator('lease-decision')
export const validateJobSubmit: Validator<'job-submit'> = validator('job-submit')
export const validateJobAttach: Validator<'job-attach'> = validator('job-attach')
export const validateJobEvent: Validator<'job-event'> = validator('job-event')
export const validateVoucher: Validator<'voucher'> = validator('voucher')
export const validateTerminate: Validator<'terminate'> = validator('terminate')
export const validateOrderResult: Validator<'order-result'> = validator('order-result')
export const validateBookQuery: Validator<'book-query'> = validator('book-query')
export const validateBookPage: Validator<'book-page'> = validator('book-page')
export const validateJobReply: Validator<'job-reply'> = validator('job-reply')
export const validateArtifactsRequest: Validator<'artifacts-request'> = validator('artifacts-request')
export const validateArtifactsHeader: Validator<'artifacts-header'> = validator('artifacts-header')

/** Validators of the parts that travel inside messages (or are stored on their own). */
export function validatePeerBinding (input: unknown): PeerBinding { return parseWith(peerBindingSchema, input) }
export function validateFleetMembership (input: unknown, options: ValidateOptions = {}): FleetMembership {
  const value = parseWith(fleetMembershipSchema, input)
  checkNotExpired(value.expiresAt, options.now, 'expiresAt')
  return value
}
export function validateOrderRequirements (input: unknown): OrderRequirements { return parseWith(orderRequirementsSchema, input) }
export function validateLeaseTerms (input: unknown): LeaseTerms { return parseWith(leaseTermsSchema, input) }
export function validateJobAuth (input: unknown): JobAuth { return parseWith(jobAuthSchema, input) }
export function validateUsageReport (input: unknown): UsageReport { return parseWith(usageReportSchema, input) }
export function validateSignedUsageReport (input: unknown): SignedUsageReport { return parseWith(signedUsageReportSchema, input) }
export function validatePaymentSignature (input: unknown): PaymentSignature { return parseWith(paymentSignatureSchema, input, 'signature') }

/** Typed aliases of {@link encodeMessage}, for symmetry with the decoders. */
export function encodeOffer (message: Offer): Uint8Array { return encodeMessage(message) }
export function encodeOrder (message: Order): Uint8Array { return encodeMessage(message) }
export function encodeLeaseProposal (message: LeaseProposal): Uint8Array { return encodeMessage(message) }
export function encodeLeaseDecision (message: LeaseDecision): Uint8Array { return encodeMessage(message) }
export function encodeJobSubmit (message: JobSubmit): Uint8Array { return encodeMessage(message) }
export function encodeJobAttach (message: JobAttach): Uint8Array { return encodeMessage(message) }
export function encodeJobEvent (message: JobEvent): Uint8Array { return encodeMessage(message) }
export function encodeVoucher (message: Voucher): Uint8Array { return encodeMessage(message) }
export function encodeTerminate (message: Terminate): Uint8Array { return encodeMessage(message) }
export function encodeOrderResult (message: OrderResult): Uint8Array { return encodeMessage(message) }
export function encodeBookQuery (message: BookQuery): Uint8Array { return encodeMessage(message) }
export function encodeBookPage (message: BookPage): Uint8Array { return encodeMessage(message) }
export function encodeJobReply (message: JobReply): Uint8Array { return encodeMessage(message) }
export function encodeArtifactsRequest (message: ArtifactsRequest): Uint8Array { return encodeMessage(message) }
export function encodeArtifactsHeader (message: ArtifactsHeader): Uint8Array { return encodeMessage(message) }
