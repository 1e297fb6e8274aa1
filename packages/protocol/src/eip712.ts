/**
 * EIP-712 for every signed gpumesh value: type strings, type hashes and digests, computed with
 * precomputed type hashes and hand-written ABI encoding (no TypedDataEncoder in the hot path).
 * `EIP712_TYPES` holds the same types in ethers' form, for wallets and for cross-checking.
 */
import { keccak_256 as keccak256 } from '@noble/hashes/sha3.js'
import { EIP712_DOMAIN_NAME, EIP712_DOMAIN_VERSION } from './constants.js'
import { canonicalJson, parseWith, toWire } from './codec.js'
import { ProtocolError } from './errors.js'
import { offerBodySchema, orderRequirementsSchema } from './schemas.js'
import type { FleetRequest, FleetRevocation } from './fleet.js'
import type {
  Bytes32, Eip712Domain, FleetMembership, Hex, JobAuth, LeaseTerms, OfferBody, Order, OrderRequirements,
  PeerBinding, Terminate, UsageReport, Voucher
} from './messages.js'

/** The signed fields of each value, without the signature (or proof) that travels with them. */
export type VoucherFields = Pick<Voucher, 'leaseId' | 'provider' | 'renter' | 'token' | 'cumulativeAmount' | 'sequence'>
export type PeerBindingFields = Pick<PeerBinding, 'peerId' | 'payment'>
export type FleetMembershipFields = Pick<FleetMembership, 'operator' | 'member' | 'peerId' | 'expiresAt'>
export type OrderFields = Omit<Order, 'type' | 'signature' | 'chainId'>
export type JobAuthFields = Pick<JobAuth, 'leaseId' | 'peerId'>
export type TerminateFields = Pick<Terminate, 'leaseId' | 'reason' | 'at'>
export type FleetRevocationFields = Pick<FleetRevocation, 'operator' | 'peerId' | 'revokedAt'>
/** `kind` is any string to the hash; `signFleetRequest` takes only the known kinds. */
export type FleetRequestFields = Omit<FleetRequest, 'type' | 'kind' | 'proof'> & { kind: string }
export interface OfferCommitmentFields {
  peerId: string
  sequence: number
  expiresAt: number
  contentHash: Bytes32
}

/** Every type string, as hashed into its type hash. */
export const EIP712_TYPE_STRINGS = {
  EIP712Domain: 'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)',
  Voucher: 'Voucher(bytes32 leaseId,address provider,address renter,address token,uint256 cumulativeAmount,uint64 sequence)',
  PeerBinding: 'PeerBinding(string peerId,address payment)',
  FleetMembership: 'FleetMembership(address operator,address member,string peerId,uint64 expiresAt)',
  OfferCommitment: 'OfferCommitment(string peerId,uint64 sequence,uint64 expiresAt,bytes32 contentHash)',
  Order: 'Order(bytes32 orderId,address renter,string renterPeerId,bytes32 requirementsHash,uint256 maxPricePerGpuHour,uint64 durationSec,address token,bytes32 jobHash,uint64 expiresAt)',
  LeaseTerms: 'LeaseTerms(bytes32 leaseId,bytes32 orderId,address provider,string providerPeerId,address renter,string renterPeerId,address token,uint256 chainId,address escrow,uint256 pricePerGpuHour,string[] gpus,string gpuClass,uint64 durationSec,uint64 billingIntervalSec,uint64 paymentGraceSec,uint64 startDeadline,bytes32 jobHash,string[] providerAddresses,uint64 acceptedAt)',
  JobAuth: 'JobAuth(bytes32 leaseId,string peerId)',
  UsageReport: 'UsageReport(bytes32 leaseId,address provider,address renter,address token,uint64 periodIndex,uint64 startOffsetMs,uint64 endOffsetMs,uint256 gpuMilliseconds,uint256 amount,uint256 cumulativeAmount,int64 avgUtilizationBp,int64 peakMemoryMiB,int256 energyMilliJoules,bool final)',
  Terminate: 'Terminate(bytes32 leaseId,string reason,uint64 at)',
  FleetRevocation: 'FleetRevocation(address operator,string peerId,uint64 revokedAt)',
  FleetRequest: 'FleetRequest(string kind,address operator,string asker,string member,bytes32 nonce,uint64 issuedAt,uint64 expiresAt)'
} as const

export type SignedTypeName = Exclude<keyof typeof EIP712_TYPE_STRINGS, 'EIP712Domain'>

export interface TypedDataField { name: string, type: string }

/** The same types in ethers' `TypedDataField` form (one primary type per entry). */
export const EIP712_TYPES: Readonly<Record<SignedTypeName, TypedDataField[]>> = Object.fromEntries(
  Object.entries(EIP712_TYPE_STRINGS).filter(([name]) => name !== 'EIP712Domain').map(([name, typeString]) => {
    const inner = typeString.slice(typeString.indexOf('(') + 1, -1)
    return [name, inner.split(',').map((member) => {
      const [type = '', fieldName = ''] = member.split(' ')
      return { name: fieldName, type }
    })]
  })
) as Record<SignedTypeName, TypedDataField[]>

const utf8 = new TextEncoder()
const hashString = (value: string): Uint8Array => keccak256(utf8.encode(value))

const TYPE_HASH = Object.fromEntries(
  Object.entries(EIP712_TYPE_STRINGS).map(([name, typeString]) => [name, hashString(typeString)])
) as Record<keyof typeof EIP712_TYPE_STRINGS, Uint8Array>

/** The type hash of a signed type (keccak256 of its type string). */
export function typeHash (name: SignedTypeName): Uint8Array {
  return TYPE_HASH[name].slice()
}

/** Lowercase 0x-hex of bytes. */
export function bytesToHex (bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`
}

/** Bytes of 0x-hex, which must be exactly `length` bytes when given. */
export function hexToBytes (hex: string, length?: number, field: string | null = null): Uint8Array {
  const body = hex.startsWith('0x') ? hex.slice(2) : ''
  const bytes = Buffer.from(body, 'hex')
  if (body.length !== bytes.length * 2 || (length !== undefined && bytes.length !== length)) {
    throw new ProtocolError('INVALID_FIELD', `expected 0x and ${length === undefined ? 'hex' : `${length} bytes of hex`}`, { field })
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Writes 32-byte ABI words into one buffer. */
class Words {
  readonly bytes: Uint8Array
  private offset = 0
  constructor (count: number, first: Uint8Array) {
    this.bytes = new Uint8Array(count * 32)
    this.raw(first)
  }

  raw (word: Uint8Array): this {
    this.bytes.set(word, this.offset)
    this.offset += 32
    return this
  }

  bytes32 (hex: string, field: string): this { return this.raw(hexToBytes(hex, 32, field)) }
  address (hex: string, field: string): this {
    this.bytes.set(hexToBytes(hex, 20, field), this.offset + 12)
    this.offset += 32
    return this
  }

  uint (value: bigint | number, bits: number, field: string): this {
    const v = BigInt(value)
    if (v < 0n || v >= 1n << BigInt(bits)) throw new ProtocolError('INVALID_FIELD', `out of range for uint${bits}`, { field })
    return this.word(v)
  }

  int (value: bigint | number, bits: number, field: string): this {
    const v = BigInt(value)
    const half = 1n << BigInt(bits - 1)
    if (v < -half || v >= half) throw new ProtocolError('INVALID_FIELD', `out of range for int${bits}`, { field })
    return this.word(v < 0n ? (1n << 256n) + v : v)
  }

  bool (value: boolean): this { return this.word(value ? 1n : 0n) }
  string (value: string): this { return this.raw(hashString(value)) }
  stringArray (values: readonly string[]): this {
    const concat = new Uint8Array(values.length * 32)
    values.forEach((value, i) => { concat.set(hashString(value), i * 32) })
    return this.raw(keccak256(concat))
  }

  private word (v: bigint): this {
    if (v !== 0n) this.bytes.set(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'), this.offset)
    this.offset += 32
    return this
  }

  hash (): Uint8Array { return keccak256(this.bytes) }
}

const domainCache = new Map<string, Uint8Array>()
const DOMAIN_CACHE_SIZE = 64
const NAME_HASH = hashString(EIP712_DOMAIN_NAME)
const VERSION_HASH = hashString(EIP712_DOMAIN_VERSION)

/** keccak256 of the encoded domain `{ name: "gpumesh", version: "1", chainId, verifyingContract }`. */
export function domainSeparator (domain: Eip712Domain): Uint8Array {
  const key = `${domain.chainId}:${domain.verifyingContract.toLowerCase()}`
  let separator = domainCache.get(key)
  if (separator === undefined) {
    separator = new Words(5, TYPE_HASH.EIP712Domain).raw(NAME_HASH).raw(VERSION_HASH)
      .uint(domain.chainId, 256, 'chainId').address(domain.verifyingContract, 'verifyingContract').hash()
    if (domainCache.size >= DOMAIN_CACHE_SIZE) domainCache.clear()
    domainCache.set(key, separator)
  }
  return separator
}

/** The zero address: the verifying contract of the market domain and of off-chain settlement. */
export const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000' as const

/**
 * The market domain: offers, orders, peer bindings, fleet memberships, lease terms, job auth, usage
 * reports and terminations are signed under `{ chainId, verifyingContract: 0x0 }`, so they do not
 * depend on which escrow contract (if any) settles the lease. Vouchers alone are signed under the
 * settlement domain: the escrow contract on-chain, the zero address off-chain.
 */
export function marketDomain (chainId: bigint): Eip712Domain {
  return { chainId, verifyingContract: ZERO_ADDRESS }
}

/**
 * The domain a lease's vouchers are signed under: the escrow its terms name on its chain, or the zero
 * address for a lease settled off-chain.
 */
export function settlementDomain (terms: Pick<LeaseTerms, 'chainId' | 'escrow'>): Eip712Domain {
  return { chainId: terms.chainId, verifyingContract: terms.escrow ?? ZERO_ADDRESS }
}

/** The ethers form of a gpumesh domain, for wallets and cross-checks. */
export function ethersDomain (domain: Eip712Domain): { name: string, version: string, chainId: bigint, verifyingContract: string } {
  return { name: EIP712_DOMAIN_NAME, version: EIP712_DOMAIN_VERSION, chainId: domain.chainId, verifyingContract: domain.verifyingContract }
}

/** keccak256(0x1901 ‖ domainSeparator ‖ structHash): what is signed. */
export function typedDataDigest (domain: Eip712Domain, structHash: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(66)
  buffer[0] = 0x19
  buffer[1] = 0x01
  buffer.set(domainSeparator(domain), 2)
  buffer.set(structHash, 34)
  return keccak256(buffer)
}

export function voucherStructHash (v: VoucherFields): Uint8Array {
  return new Words(7, TYPE_HASH.Voucher).bytes32(v.leaseId, 'leaseId').address(v.provider, 'provider')
    .address(v.renter, 'renter').address(v.token, 'token').uint(v.cumulativeAmount, 256, 'cumulativeAmount')
    .uint(v.sequence, 64, 'sequence').hash()
}

export function peerBindingStructHash (v: PeerBindingFields): Uint8Array {
  return new Words(3, TYPE_HASH.PeerBinding).string(v.peerId).address(v.payment, 'payment').hash()
}

export function fleetMembershipStructHash (v: FleetMembershipFields): Uint8Array {
  return new Words(5, TYPE_HASH.FleetMembership).address(v.operator, 'operator').address(v.member, 'member')
    .string(v.peerId).uint(v.expiresAt, 64, 'expiresAt').hash()
}

export function fleetRevocationStructHash (v: FleetRevocationFields): Uint8Array {
  return new Words(4, TYPE_HASH.FleetRevocation).address(v.operator, 'operator').string(v.peerId)
    .uint(v.revokedAt, 64, 'revokedAt').hash()
}

export function fleetRequestStructHash (v: FleetRequestFields): Uint8Array {
  return new Words(8, TYPE_HASH.FleetRequest).string(v.kind).address(v.operator, 'operator').string(v.asker)
    .string(v.member).bytes32(v.nonce, 'nonce').uint(v.issuedAt, 64, 'issuedAt').uint(v.expiresAt, 64, 'expiresAt').hash()
}

export function offerCommitmentStructHash (v: OfferCommitmentFields): Uint8Array {
  return new Words(5, TYPE_HASH.OfferCommitment).string(v.peerId).uint(v.sequence, 64, 'sequence')
    .uint(v.expiresAt, 64, 'expiresAt').bytes32(v.contentHash, 'contentHash').hash()
}

export function orderStructHash (v: OrderFields): Uint8Array {
  return new Words(10, TYPE_HASH.Order).bytes32(v.orderId, 'orderId').address(v.renter, 'renter')
    .string(v.renterPeerId).bytes32(requirementsHash(v.requirements), 'requirements')
    .uint(v.maxPricePerGpuHour, 256, 'maxPricePerGpuHour').uint(v.durationSec, 64, 'durationSec')
    .address(v.token, 'token').bytes32(v.jobHash, 'jobHash').uint(v.expiresAt, 64, 'expiresAt').hash()
}

export function leaseTermsStructHash (v: LeaseTerms): Uint8Array {
  return new Words(20, TYPE_HASH.LeaseTerms).bytes32(v.leaseId, 'leaseId').bytes32(v.orderId, 'orderId')
    .address(v.provider, 'provider').string(v.providerPeerId).address(v.renter, 'renter').string(v.renterPeerId)
    .address(v.token, 'token').uint(v.chainId, 256, 'chainId').address(v.escrow, 'escrow').uint(v.pricePerGpuHour, 256, 'pricePerGpuHour')
    .stringArray(v.gpus).string(v.gpuClass).uint(v.durationSec, 64, 'durationSec')
    .uint(v.billingIntervalSec, 64, 'billingIntervalSec').uint(v.paymentGraceSec, 64, 'paymentGraceSec')
    .uint(v.startDeadline, 64, 'startDeadline').bytes32(v.jobHash, 'jobHash').stringArray(v.providerAddresses)
    .uint(v.acceptedAt, 64, 'acceptedAt').hash()
}

export function jobAuthStructHash (v: JobAuthFields): Uint8Array {
  return new Words(3, TYPE_HASH.JobAuth).bytes32(v.leaseId, 'leaseId').string(v.peerId).hash()
}

/** Nullable report fields are signed as -1 when null. */
export function usageReportStructHash (v: UsageReport): Uint8Array {
  return new Words(15, TYPE_HASH.UsageReport).bytes32(v.leaseId, 'leaseId').address(v.provider, 'provider')
    .address(v.renter, 'renter').address(v.token, 'token').uint(v.periodIndex, 64, 'periodIndex')
    .uint(v.startOffsetMs, 64, 'startOffsetMs').uint(v.endOffsetMs, 64, 'endOffsetMs')
    .uint(v.gpuMilliseconds, 256, 'gpuMilliseconds').uint(v.amount, 256, 'amount')
    .uint(v.cumulativeAmount, 256, 'cumulativeAmount').int(v.avgUtilizationBp ?? -1, 64, 'avgUtilizationBp')
    .int(v.peakMemoryMiB ?? -1, 64, 'peakMemoryMiB').int(v.energyMilliJoules ?? -1n, 256, 'energyMilliJoules')
    .bool(v.final).hash()
}

export function terminateStructHash (v: TerminateFields): Uint8Array {
  return new Words(4, TYPE_HASH.Terminate).bytes32(v.leaseId, 'leaseId').string(v.reason).uint(v.at, 64, 'at').hash()
}

/**
 * keccak256 of the canonical JSON of the offer without its signature. The body is validated first
 * (which also checksums its addresses), so the same offer always has the same hash.
 */
export function offerContentHash (offer: OfferBody): Bytes32 {
  const { signature: _signature, ...body } = offer as OfferBody & { signature?: unknown }
  const normalized = parseWith(offerBodySchema, toWire(body))
  return bytesToHex(keccak256(utf8.encode(canonicalJson(normalized)))) as Bytes32
}

/** keccak256 of the canonical JSON of an order's requirements (validated and normalized first). */
export function requirementsHash (requirements: OrderRequirements): Bytes32 {
  const normalized = parseWith(orderRequirementsSchema, toWire(requirements), 'requirements')
  return bytesToHex(keccak256(utf8.encode(canonicalJson(normalized)))) as Bytes32
}

/** The `OfferCommitment` an offer's signature covers. */
export function offerCommitment (offer: OfferBody): OfferCommitmentFields {
  return { peerId: offer.peerId, sequence: offer.sequence, expiresAt: offer.expiresAt, contentHash: offerContentHash(offer) }
}

/** Digests (the EIP-712 `hashTypedData` of each type): what the payment key signs. */
export const voucherDigest = (v: VoucherFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, voucherStructHash(v))
export const peerBindingDigest = (v: PeerBindingFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, peerBindingStructHash(v))
export const fleetMembershipDigest = (v: FleetMembershipFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, fleetMembershipStructHash(v))
export const fleetRevocationDigest = (v: FleetRevocationFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, fleetRevocationStructHash(v))
export const fleetRequestDigest = (v: FleetRequestFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, fleetRequestStructHash(v))
export const offerDigest = (v: OfferBody, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, offerCommitmentStructHash(offerCommitment(v)))
export const orderDigest = (v: OrderFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, orderStructHash(v))
export const leaseTermsDigest = (v: LeaseTerms, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, leaseTermsStructHash(v))
export const jobAuthDigest = (v: JobAuthFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, jobAuthStructHash(v))
export const usageReportDigest = (v: UsageReport, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, usageReportStructHash(v))
export const terminateDigest = (v: TerminateFields, domain: Eip712Domain): Uint8Array => typedDataDigest(domain, terminateStructHash(v))

/** What a wallet's `eth_signTypedData_v4` (or ethers' `signTypedData`) takes. */
export interface TypedDataPayload {
  domain: ReturnType<typeof ethersDomain>
  types: Record<string, TypedDataField[]>
  primaryType: SignedTypeName
  message: Record<string, unknown>
}

/** The EIP-712 struct (the `message`) each value is signed as. */
export const eip712Message = {
  Voucher: (v: VoucherFields) => ({ leaseId: v.leaseId, provider: v.provider, renter: v.renter, token: v.token, cumulativeAmount: v.cumulativeAmount, sequence: v.sequence }),
  PeerBinding: (v: PeerBindingFields) => ({ peerId: v.peerId, payment: v.payment }),
  FleetMembership: (v: FleetMembershipFields) => ({ operator: v.operator, member: v.member, peerId: v.peerId, expiresAt: v.expiresAt }),
  OfferCommitment: (v: OfferBody) => ({ ...offerCommitment(v) }),
  Order: (v: OrderFields) => ({
    orderId: v.orderId, renter: v.renter, renterPeerId: v.renterPeerId, requirementsHash: requirementsHash(v.requirements),
    maxPricePerGpuHour: v.maxPricePerGpuHour, durationSec: v.durationSec, token: v.token, jobHash: v.jobHash, expiresAt: v.expiresAt
  }),
  LeaseTerms: (v: LeaseTerms) => ({ ...v, gpus: [...v.gpus], providerAddresses: [...v.providerAddresses] }),
  JobAuth: (v: JobAuthFields) => ({ leaseId: v.leaseId, peerId: v.peerId }),
  UsageReport: (v: UsageReport) => ({
    ...v, avgUtilizationBp: v.avgUtilizationBp ?? -1, peakMemoryMiB: v.peakMemoryMiB ?? -1, energyMilliJoules: v.energyMilliJoules ?? -1n
  }),
  Terminate: (v: TerminateFields) => ({ leaseId: v.leaseId, reason: v.reason, at: v.at }),
  FleetRevocation: (v: FleetRevocationFields) => ({ operator: v.operator, peerId: v.peerId, revokedAt: v.revokedAt }),
  FleetRequest: (v: FleetRequestFields) => ({
    kind: v.kind, operator: v.operator, asker: v.asker, member: v.member, nonce: v.nonce, issuedAt: v.issuedAt, expiresAt: v.expiresAt
  })
} satisfies { [N in SignedTypeName]: (v: never) => Record<string, unknown> }

/** The full typed-data payload of a value, for wallets and for cross-checking with ethers. */
export function typedData<N extends SignedTypeName> (
  primaryType: N,
  value: Parameters<typeof eip712Message[N]>[0],
  domain: Eip712Domain
): TypedDataPayload {
  const toMessage = eip712Message[primaryType] as (v: typeof value) => Record<string, unknown>
  return { domain: ethersDomain(domain), types: { [primaryType]: EIP712_TYPES[primaryType] }, primaryType, message: toMessage(value) }
}
