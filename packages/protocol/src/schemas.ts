/**
 * Zod schemas of the wire form of every message. Each one parses the JSON value of a message into its
 * typed value (decimal strings → bigint, addresses → checksummed) and checks its meaning: positive
 * prices, counts, ranges, lengths and cross-field consistency. Objects are strict: unknown fields fail.
 */
import { getAddress } from 'ethers'
import { z } from 'zod'
import { JOB_REPLY_CODES, LEASE_REJECT_CODES } from './messages.js'
import { LIMITS, MAX_UINT256, MAX_UINT64 } from './constants.js'
import type {
  Address, ArtifactsHeader, ArtifactsRequest, JobReply, BookFilters, BookPage, BookQuery, Bytes32, FleetMembership, Hex, HostSummary, JobAttach, JobAuth, JobEvent, JobSpec, JobSubmit,
  LeaseDecision, LeaseProposal, LeaseTerms, Offer, OfferBody, OfferedGpus, Order, OrderRequirements, PaymentSignature,
  NoMatchExplanation, OrderResult, PeerBinding, ProviderObservation, SignedUsageReport, Terminate, UsageReport, Voucher
} from './messages.js'

const ADDRESS = /^0x[0-9a-fA-F]{40}$/
const BYTES32 = /^0x[0-9a-f]{64}$/
const DECIMAL = /^(0|[1-9][0-9]{0,77})$/
/** base58btc multihash (Qm…, 12D3KooW…) or base32 CIDv1 (b…). */
const PEER_ID = /^(?:[1-9A-HJ-NP-Za-km-z]{40,100}|b[a-z2-7]{40,100})$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
const COMPUTE_CAPABILITY = /^\d{1,3}\.\d{1,3}$/

const str = (max: number): z.ZodString => z.string().min(1).max(max)
const nullable = <T extends z.ZodType>(schema: T): z.ZodNullable<T> => schema.nullable()

export const uintSchema = z.int().nonnegative()
export const positiveIntSchema = z.int().positive()
/** Unix milliseconds. */
export const timeSchema = uintSchema

/**
 * Checksummed forms of the addresses seen lately. `getAddress` hashes (keccak-256) on every call, and
 * the same few addresses (renter, provider, token, escrow) come in message after message, each decoded,
 * encoded and hashed for signing. Bounded; an address with a bad checksum throws and is not kept.
 */
const checksummed = new Map<string, Address>()
const CHECKSUMMED_CACHE_SIZE = 4096

function checksumAddress (value: string): Address {
  const hit = checksummed.get(value)
  if (hit !== undefined) return hit
  const address = getAddress(value) as Address
  if (checksummed.size >= CHECKSUMMED_CACHE_SIZE) {
    const oldest = checksummed.keys().next()
    if (oldest.done !== true) checksummed.delete(oldest.value)
  }
  checksummed.set(value, address)
  return address
}

export const addressSchema = z.string().regex(ADDRESS, 'expected a 0x-prefixed 20-byte address')
  .transform((value, ctx): Address => {
    try {
      return checksumAddress(value)
    } catch {
      ctx.addIssue({ code: 'custom', message: 'bad address checksum', input: value })
      return z.NEVER
    }
  })

export const bytes32Schema = z.string().regex(BYTES32, 'expected 0x and 64 lowercase hex digits')
  .transform((value): Bytes32 => value as Bytes32)

const hexOfBytes = (bytes: number): z.ZodType<Hex> => z.string()
  .regex(new RegExp(`^0x[0-9a-f]{${bytes * 2}}$`), `expected 0x and ${bytes * 2} lowercase hex digits`)
  .transform((value): Hex => value as Hex)

export const peerIdSchema = z.string().regex(PEER_ID, 'expected a libp2p peer id')

const bigintSchema = (max: bigint, min = 0n): z.ZodType<bigint> => z.string()
  .regex(DECIMAL, 'expected a decimal integer string')
  .transform((value) => BigInt(value))
  .refine((value) => value >= min && value <= max, { message: `expected ${min} to ${max}` })

/** uint256 in base units, on the wire as a decimal string. */
export const amountSchema = bigintSchema(MAX_UINT256)
export const positiveAmountSchema = bigintSchema(MAX_UINT256, 1n)
export const uint64BigintSchema = bigintSchema(MAX_UINT64)

export const paymentSignatureSchema: z.ZodType<PaymentSignature> = z.strictObject({
  publicKey: z.string().regex(/^0x0[23][0-9a-f]{64}$/, 'expected a 33-byte compressed public key')
    .transform((value): Hex => value as Hex),
  signature: hexOfBytes(65)
})

export const peerBindingSchema: z.ZodType<PeerBinding> = z.strictObject({
  peerId: peerIdSchema,
  payment: addressSchema,
  proof: paymentSignatureSchema
})

export const fleetMembershipSchema: z.ZodType<FleetMembership> = z.strictObject({
  operator: addressSchema,
  member: addressSchema,
  peerId: peerIdSchema,
  expiresAt: timeSchema,
  proof: paymentSignatureSchema
})

export const offeredGpusSchema: z.ZodType<OfferedGpus> = z.strictObject({
  class: str(LIMITS.shortString),
  vendor: z.enum(['nvidia', 'amd']),
  memoryMiB: positiveIntSchema,
  computeCapability: nullable(z.string().regex(COMPUTE_CAPABILITY)),
  countFree: uintSchema,
  countTotal: positiveIntSchema,
  pricePerGpuHour: positiveAmountSchema,
  simulated: z.boolean()
}).check((ctx) => {
  if (ctx.value.countFree > ctx.value.countTotal) {
    ctx.issues.push({ code: 'custom', path: ['countFree'], message: 'countFree exceeds countTotal', input: ctx.value })
  }
})

export const hostSummarySchema: z.ZodType<HostSummary> = z.strictObject({
  cpuModel: nullable(str(LIMITS.string)),
  cpuCores: nullable(positiveIntSchema),
  memoryMiB: nullable(uintSchema),
  diskFreeMiB: nullable(uintSchema),
  os: nullable(str(LIMITS.string))
})

const multiaddrSchema = z.string().min(2).max(LIMITS.string).startsWith('/')

const offerBodyShape = {
  type: z.literal('offer'),
  peerId: peerIdSchema,
  binding: peerBindingSchema,
  fleet: nullable(fleetMembershipSchema),
  addresses: z.array(multiaddrSchema).max(LIMITS.addresses),
  gpus: z.array(offeredGpusSchema).min(1).max(LIMITS.offeredGpuKinds),
  host: hostSummarySchema,
  token: addressSchema,
  chainId: positiveAmountSchema,
  escrow: addressSchema,
  region: nullable(str(LIMITS.shortString)),
  minLeaseSec: positiveIntSchema,
  maxLeaseSec: positiveIntSchema,
  billingIntervalSec: positiveIntSchema,
  paymentGraceSec: uintSchema,
  sequence: uintSchema,
  issuedAt: timeSchema,
  expiresAt: timeSchema
}

function checkOffer (ctx: z.core.ParsePayload<OfferBody>): void {
  const o = ctx.value
  const issue = (path: PropertyKey[], message: string): void => {
    ctx.issues.push({ code: 'custom', path, message, input: o })
  }
  if (o.binding.peerId !== o.peerId) issue(['binding', 'peerId'], 'binding is for another peer')
  if (o.fleet != null) {
    if (o.fleet.peerId !== o.peerId) issue(['fleet', 'peerId'], 'fleet membership is for another peer')
    if (o.fleet.member !== o.binding.payment) issue(['fleet', 'member'], 'fleet member is not the payment address')
  }
  if (o.maxLeaseSec < o.minLeaseSec) issue(['maxLeaseSec'], 'maxLeaseSec below minLeaseSec')
  if (o.expiresAt <= o.issuedAt) issue(['expiresAt'], 'expiresAt must be after issuedAt')
}

/** An offer without its signature: what `OfferCommitment.contentHash` commits to. */
export const offerBodySchema: z.ZodType<OfferBody> = z.strictObject(offerBodyShape).check(checkOffer)

export const offerSchema: z.ZodType<Offer> = z.strictObject({ ...offerBodyShape, signature: paymentSignatureSchema })
  .check(checkOffer)

export const orderRequirementsSchema: z.ZodType<OrderRequirements> = z.strictObject({
  gpuCount: positiveIntSchema,
  classes: z.array(str(LIMITS.shortString)).max(LIMITS.classes),
  minMemoryMiB: uintSchema,
  minComputeCapability: nullable(z.string().regex(COMPUTE_CAPABILITY)),
  region: nullable(str(LIMITS.shortString)),
  operators: z.array(addressSchema).max(LIMITS.operators),
  escrow: nullable(addressSchema),
  allowSimulated: z.boolean()
})

export const orderSchema: z.ZodType<Order> = z.strictObject({
  type: z.literal('order'),
  orderId: bytes32Schema,
  renter: addressSchema,
  renterPeerId: peerIdSchema,
  requirements: orderRequirementsSchema,
  maxPricePerGpuHour: positiveAmountSchema,
  durationSec: positiveIntSchema,
  token: addressSchema,
  chainId: positiveAmountSchema,
  jobHash: bytes32Schema,
  expiresAt: timeSchema,
  signature: paymentSignatureSchema
})

export const leaseProposalSchema: z.ZodType<LeaseProposal> = z.strictObject({
  type: z.literal('lease-proposal'),
  order: orderSchema,
  pricePerGpuHour: positiveAmountSchema,
  offerSequence: uintSchema,
  gpuClass: str(LIMITS.shortString)
})

export const leaseTermsSchema: z.ZodType<LeaseTerms> = z.strictObject({
  leaseId: bytes32Schema,
  orderId: bytes32Schema,
  provider: addressSchema,
  providerPeerId: peerIdSchema,
  renter: addressSchema,
  renterPeerId: peerIdSchema,
  token: addressSchema,
  chainId: positiveAmountSchema,
  escrow: addressSchema,
  pricePerGpuHour: positiveAmountSchema,
  gpus: z.array(str(LIMITS.shortString)).min(1).max(LIMITS.leaseGpus),
  gpuClass: str(LIMITS.shortString),
  durationSec: positiveIntSchema,
  billingIntervalSec: positiveIntSchema,
  paymentGraceSec: uintSchema,
  startDeadline: timeSchema,
  jobHash: bytes32Schema,
  providerAddresses: z.array(multiaddrSchema).max(LIMITS.addresses),
  acceptedAt: timeSchema
}).check((ctx) => {
  if (ctx.value.startDeadline < ctx.value.acceptedAt) {
    ctx.issues.push({ code: 'custom', path: ['startDeadline'], message: 'startDeadline before acceptedAt', input: ctx.value })
  }
})

export const leaseDecisionSchema: z.ZodType<LeaseDecision> = z.discriminatedUnion('accepted', [
  z.strictObject({
    type: z.literal('lease-decision'),
    accepted: z.literal(true),
    terms: leaseTermsSchema,
    signature: paymentSignatureSchema
  }),
  z.strictObject({
    type: z.literal('lease-decision'),
    accepted: z.literal(false),
    orderId: nullable(bytes32Schema),
    code: z.enum(LEASE_REJECT_CODES),
    message: z.string().max(LIMITS.message)
  })
])

export const jobAuthSchema: z.ZodType<JobAuth> = z.strictObject({
  leaseId: bytes32Schema,
  peerId: peerIdSchema,
  signature: paymentSignatureSchema
})

export const jobSpecSchema: z.ZodType<JobSpec> = z.strictObject({
  command: str(LIMITS.command),
  args: z.array(z.string().max(LIMITS.command)).max(LIMITS.args),
  // zod drops a `__proto__` key silently; refuse it instead, so what was sent is what is run.
  env: z.custom<unknown>((value) => typeof value !== 'object' || value === null || !Object.hasOwn(value, '__proto__'), 'reserved name __proto__')
    .pipe(z.record(z.string().regex(ENV_NAME), z.string().max(LIMITS.command)))
    .check((ctx) => {
      if (Object.keys(ctx.value).length > LIMITS.envEntries) {
        ctx.issues.push({ code: 'custom', message: `more than ${LIMITS.envEntries} entries`, input: ctx.value })
      }
    }),
  image: nullable(str(LIMITS.string)),
  maxRunTimeSec: positiveIntSchema
})

export const jobSubmitSchema: z.ZodType<JobSubmit> = z.strictObject({
  type: z.literal('job-submit'),
  auth: jobAuthSchema,
  spec: jobSpecSchema,
  bundleSize: uintSchema
})

export const jobAttachSchema: z.ZodType<JobAttach> = z.strictObject({
  type: z.literal('job-attach'),
  auth: jobAuthSchema,
  fromSequence: uintSchema
})

export const usageReportSchema: z.ZodType<UsageReport> = z.strictObject({
  leaseId: bytes32Schema,
  provider: addressSchema,
  renter: addressSchema,
  token: addressSchema,
  periodIndex: uintSchema,
  startOffsetMs: uintSchema,
  endOffsetMs: uintSchema,
  gpuMilliseconds: amountSchema,
  amount: amountSchema,
  cumulativeAmount: amountSchema,
  avgUtilizationBp: nullable(uintSchema.max(10_000)),
  peakMemoryMiB: nullable(uintSchema),
  energyMilliJoules: nullable(amountSchema),
  final: z.boolean()
}).check((ctx) => {
  const r = ctx.value
  if (r.endOffsetMs < r.startOffsetMs) {
    ctx.issues.push({ code: 'custom', path: ['endOffsetMs'], message: 'period ends before it starts', input: r })
  }
  if (r.amount > r.cumulativeAmount) {
    ctx.issues.push({ code: 'custom', path: ['cumulativeAmount'], message: 'cumulativeAmount below amount', input: r })
  }
})

export const signedUsageReportSchema: z.ZodType<SignedUsageReport> = z.strictObject({
  report: usageReportSchema,
  signature: paymentSignatureSchema
})

/** Which optional fields each job event kind requires (r) or allows (a); others must be absent. */
const JOB_EVENT_FIELDS: Record<JobEvent['kind'], Partial<Record<'stream' | 'text' | 'report' | 'exitCode' | 'state' | 'reason', 'r' | 'a'>>> = {
  started: {},
  log: { stream: 'r', text: 'r' },
  usage: { report: 'r' },
  checkpoint: { text: 'a' },
  exit: { exitCode: 'r', state: 'r', text: 'a' },
  terminated: { state: 'r', reason: 'r', text: 'a' }
}

export const jobEventSchema: z.ZodType<JobEvent> = z.strictObject({
  type: z.literal('job-event'),
  leaseId: bytes32Schema,
  sequence: uintSchema,
  at: timeSchema,
  kind: z.enum(['started', 'log', 'usage', 'checkpoint', 'exit', 'terminated']),
  stream: z.enum(['stdout', 'stderr']).optional(),
  text: z.string().max(LIMITS.logLine).optional(),
  report: signedUsageReportSchema.optional(),
  exitCode: nullable(z.int().min(-2_147_483_648).max(4_294_967_295)).optional(),
  state: str(LIMITS.shortString).optional(),
  reason: str(LIMITS.shortString).optional()
}).check((ctx) => {
  const e = ctx.value
  const rules = JOB_EVENT_FIELDS[e.kind]
  for (const field of ['stream', 'text', 'report', 'exitCode', 'state', 'reason'] as const) {
    const rule = rules[field]
    const present = e[field] !== undefined
    if (rule === 'r' && !present) {
      ctx.issues.push({ code: 'custom', path: [field], message: `required for a ${e.kind} event`, input: e })
    } else if (rule === undefined && present) {
      ctx.issues.push({ code: 'custom', path: [field], message: `not allowed in a ${e.kind} event`, input: e })
    }
  }
})

export const voucherSchema: z.ZodType<Voucher> = z.strictObject({
  type: z.literal('voucher'),
  leaseId: bytes32Schema,
  provider: addressSchema,
  renter: addressSchema,
  token: addressSchema,
  cumulativeAmount: amountSchema,
  sequence: uint64BigintSchema,
  chainId: positiveAmountSchema,
  verifyingContract: addressSchema,
  signature: paymentSignatureSchema
})

export const terminateSchema: z.ZodType<Terminate> = z.strictObject({
  type: z.literal('terminate'),
  leaseId: bytes32Schema,
  reason: str(LIMITS.string),
  at: timeSchema,
  signature: paymentSignatureSchema
})

const reasonCodeSchema = z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'expected an upper-case reason code')

export const noMatchExplanationSchema: z.ZodType<NoMatchExplanation> = z.strictObject({
  offersConsidered: uintSchema,
  fitting: uintSchema,
  reasons: z.array(z.strictObject({ code: reasonCodeSchema, count: positiveIntSchema })).max(LIMITS.explanationEntries),
  cheapestPricePerGpuHour: nullable(positiveAmountSchema),
  declined: z.array(z.strictObject({ providerPeerId: peerIdSchema, code: reasonCodeSchema })).max(LIMITS.explanationEntries),
  message: z.string().max(LIMITS.message)
})

export const orderResultSchema: z.ZodType<OrderResult> = z.discriminatedUnion('status', [
  z.strictObject({
    type: z.literal('order-result'),
    status: z.literal('leased'),
    orderId: bytes32Schema,
    lease: z.strictObject({ terms: leaseTermsSchema, signature: paymentSignatureSchema }),
    providerPeerId: peerIdSchema,
    providerAddresses: z.array(multiaddrSchema).max(LIMITS.addresses)
  }).check((ctx) => {
    const r = ctx.value
    if (r.lease.terms.orderId !== r.orderId) {
      ctx.issues.push({ code: 'custom', path: ['lease', 'terms', 'orderId'], message: 'lease is for another order', input: r })
    }
    if (r.lease.terms.providerPeerId !== r.providerPeerId) {
      ctx.issues.push({ code: 'custom', path: ['lease', 'terms', 'providerPeerId'], message: 'lease is from another provider', input: r })
    }
  }),
  z.strictObject({
    type: z.literal('order-result'),
    status: z.literal('no-match'),
    orderId: bytes32Schema,
    explanation: noMatchExplanationSchema
  })
])

export const bookFiltersSchema: z.ZodType<BookFilters> = z.strictObject({
  gpuClass: nullable(str(LIMITS.shortString)),
  minGpus: nullable(positiveIntSchema),
  minMemoryMiB: nullable(uintSchema),
  maxPricePerGpuHour: nullable(positiveAmountSchema),
  region: nullable(str(LIMITS.shortString)),
  operator: nullable(addressSchema),
  includeSimulated: z.boolean()
})

export const bookQuerySchema: z.ZodType<BookQuery> = z.strictObject({
  type: z.literal('book-query'),
  filters: bookFiltersSchema,
  offset: uintSchema,
  limit: positiveIntSchema.max(LIMITS.bookPage),
  includeRecords: z.boolean().optional()
})

export const providerObservationSchema: z.ZodType<ProviderObservation> = z.strictObject({
  peerId: peerIdSchema,
  observedSec: uintSchema.max(LIMITS.maxObservedSec),
  interruptions: uintSchema.max(LIMITS.maxInterruptions)
})

export const bookPageSchema: z.ZodType<BookPage> = z.strictObject({
  type: z.literal('book-page'),
  offers: z.array(offerSchema).max(LIMITS.bookPage),
  nextOffset: nullable(uintSchema),
  bookSize: uintSchema,
  records: z.array(providerObservationSchema).max(LIMITS.bookPage).optional()
}).check((ctx) => {
  const records = ctx.value.records
  if (records == null) return
  const listed = new Set(ctx.value.offers.map((o) => o.peerId))
  const seen = new Set<string>()
  records.forEach((r, i) => {
    if (!listed.has(r.peerId)) {
      ctx.issues.push({ code: 'custom', path: ['records', i, 'peerId'], message: 'a record of a provider with no offer on this page', input: r })
    } else if (seen.has(r.peerId)) {
      ctx.issues.push({ code: 'custom', path: ['records', i, 'peerId'], message: 'a second record of the same provider', input: r })
    }
    seen.add(r.peerId)
  })
})

export const jobReplySchema: z.ZodType<JobReply> = z.strictObject({
  type: z.literal('job-reply'),
  subject: z.enum(['submit', 'attach', 'terminate', 'voucher', 'keepalive']),
  ok: z.boolean(),
  code: nullable(reasonCodeSchema),
  message: nullable(z.string().max(LIMITS.message))
}).check((ctx) => {
  if (ctx.value.ok !== (ctx.value.code === null)) {
    ctx.issues.push({ code: 'custom', path: ['code'], message: 'a refusal carries a code, an acceptance none', input: ctx.value })
  }
})

export const artifactsRequestSchema: z.ZodType<ArtifactsRequest> = z.strictObject({
  type: z.literal('artifacts-request'),
  auth: jobAuthSchema
})

export const artifactsHeaderSchema: z.ZodType<ArtifactsHeader> = z.discriminatedUnion('ok', [
  z.strictObject({
    type: z.literal('artifacts-header'),
    ok: z.literal(true),
    size: uintSchema,
    sha256: bytes32Schema
  }),
  z.strictObject({
    type: z.literal('artifacts-header'),
    ok: z.literal(false),
    code: z.enum(JOB_REPLY_CODES),
    message: z.string().max(LIMITS.message)
  })
])
