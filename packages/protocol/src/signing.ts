/**
 * Signing with a payment key and fast verification.
 *
 * A {@link PaymentSignature} carries the signer's compressed public key. Verifying is then: derive the
 * address from that key (cached per key), compare it with the address the message claims, require
 * v ∈ {27, 28} and a low s, and recover the key from (r, s, v) over the EIP-712 digest with
 * libsecp256k1 (WebAssembly, via tiny-secp256k1), which must give back exactly the carried key. That
 * agrees with `ethers.verifyTypedData` on every input, at many times its speed.
 */
import { keccak_256 as keccak256 } from '@noble/hashes/sha3.js'
import { getAddress } from 'ethers'
import * as secp from 'tiny-secp256k1'
import { VERIFY_KEY_CACHE_SIZE } from './constants.js'
import { ProtocolError } from './errors.js'
import {
  bytesToHex, fleetMembershipDigest, hexToBytes, jobAuthDigest, leaseTermsDigest, offerDigest, orderDigest,
  peerBindingDigest, terminateDigest, usageReportDigest, voucherDigest
} from './eip712.js'
import type {
  FleetMembershipFields, JobAuthFields, OrderFields, PeerBindingFields, TerminateFields, VoucherFields
} from './eip712.js'
import type {
  Address, Eip712Domain, FleetMembership, JobAuth, LeaseTerms, Offer, OfferBody, Order, PaymentSignature,
  PeerBinding, SignedUsageReport, Terminate, UsageReport, Voucher
} from './messages.js'

/** A payment key: an ethers SigningKey, anything holding one (Wallet), or a 0x private key. */
export type PaymentKey = { readonly privateKey: string } | { readonly signingKey: { readonly privateKey: string } } | string

/** n/2 of secp256k1: a signature's s must not exceed it. */
const HALF_N = hexToBytes('0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0', 32)

function privateKeyBytes (key: PaymentKey): Uint8Array {
  const hex = typeof key === 'string' ? key : 'signingKey' in key ? key.signingKey.privateKey : key.privateKey
  const bytes = hexToBytes(hex, 32, 'key')
  if (!secp.isPrivate(bytes)) throw new ProtocolError('INVALID_FIELD', 'not a secp256k1 private key', { field: 'key' })
  return bytes
}

/** The address of a public key (compressed or not). */
export function publicKeyToAddress (publicKey: Uint8Array): Address {
  let uncompressed: Uint8Array
  try {
    uncompressed = secp.pointCompress(publicKey, false)
  } catch (err) {
    throw new ProtocolError('BAD_SIGNATURE', 'public key is not a secp256k1 point', { field: 'signature.publicKey', cause: err })
  }
  return getAddress(bytesToHex(keccak256(uncompressed.subarray(1)).subarray(12))) as Address
}

/** The address of the key that signs with `key`. */
export function paymentKeyAddress (key: PaymentKey): Address {
  const publicKey = secp.pointFromScalar(privateKeyBytes(key), true)
  if (publicKey == null) throw new ProtocolError('INVALID_FIELD', 'not a secp256k1 private key', { field: 'key' })
  return publicKeyToAddress(publicKey)
}

interface SigningKey { secret: Uint8Array, publicKey: PaymentSignature['publicKey'] }
/** Keys this process signs with (a provider has one or two): deriving the public key costs a scalar multiplication, as much as the signature. */
const signingKeys = new Map<string, SigningKey>()
const SIGNING_KEY_CACHE_SIZE = 16

function signingKey (key: PaymentKey): SigningKey {
  const hex = typeof key === 'string' ? key : 'signingKey' in key ? key.signingKey.privateKey : key.privateKey
  const hit = signingKeys.get(hex)
  if (hit !== undefined) return hit
  const secret = privateKeyBytes(key)
  const publicKey = secp.pointFromScalar(secret, true)
  if (publicKey == null) throw new ProtocolError('INVALID_FIELD', 'not a secp256k1 private key', { field: 'key' })
  const entry = { secret, publicKey: bytesToHex(publicKey) }
  if (signingKeys.size >= SIGNING_KEY_CACHE_SIZE) signingKeys.clear()
  signingKeys.set(hex, entry)
  return entry
}

/** Signs a 32-byte digest (low s, v = 27 | 28) and attaches the compressed public key. */
export function signDigest (digest: Uint8Array, key: PaymentKey): PaymentSignature {
  const { secret, publicKey } = signingKey(key)
  const { signature, recoveryId } = secp.signRecoverable(digest, secret)
  const bytes = new Uint8Array(65)
  bytes.set(signature)
  bytes[64] = 27 + recoveryId
  return { publicKey, signature: bytesToHex(bytes) }
}

interface KnownKey { bytes: Uint8Array, address: Address, addressLower: string }
const knownKeys = new Map<string, KnownKey>()

/** The carried public key and its address, remembered in a bounded LRU. */
function knownKey (publicKeyHex: string, field: string): KnownKey {
  const hit = knownKeys.get(publicKeyHex)
  if (hit !== undefined) {
    knownKeys.delete(publicKeyHex)
    knownKeys.set(publicKeyHex, hit)
    return hit
  }
  let bytes: Uint8Array
  try {
    bytes = hexToBytes(publicKeyHex, 33)
  } catch (err) {
    throw new ProtocolError('BAD_SIGNATURE', 'public key is not 33 bytes of hex', { field: `${field}.publicKey`, cause: err })
  }
  if (!secp.isPointCompressed(bytes)) {
    throw new ProtocolError('BAD_SIGNATURE', 'public key is not a compressed secp256k1 point', { field: `${field}.publicKey` })
  }
  const address = publicKeyToAddress(bytes)
  const entry = { bytes, address, addressLower: address.toLowerCase() }
  knownKeys.set(publicKeyHex, entry)
  if (knownKeys.size > VERIFY_KEY_CACHE_SIZE) {
    const oldest = knownKeys.keys().next()
    if (oldest.done !== true) knownKeys.delete(oldest.value)
  }
  return entry
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function greaterThan (a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    if (x !== y) return x > y
  }
  return false
}

/**
 * Verifies a payment signature over a digest and returns the signer's (checksummed) address. When
 * `expectedSigner` is given, the signer must be that address. Throws ProtocolError BAD_SIGNATURE.
 */
export function verifyDigest (
  digest: Uint8Array,
  signature: PaymentSignature,
  expectedSigner: string | null = null,
  field = 'signature'
): Address {
  const key = knownKey(signature.publicKey, field)
  if (expectedSigner !== null && key.addressLower !== expectedSigner.toLowerCase()) {
    throw new ProtocolError('BAD_SIGNATURE', `signed by ${key.address}, not ${expectedSigner}`, { field: `${field}.publicKey` })
  }
  let bytes: Uint8Array
  try {
    bytes = hexToBytes(signature.signature, 65)
  } catch (err) {
    throw new ProtocolError('BAD_SIGNATURE', 'signature is not 65 bytes of hex', { field: `${field}.signature`, cause: err })
  }
  const v = bytes[64]
  if (v !== 27 && v !== 28) throw new ProtocolError('BAD_SIGNATURE', 'v is not 27 or 28', { field: `${field}.signature` })
  if (greaterThan(bytes.subarray(32, 64), HALF_N)) {
    throw new ProtocolError('BAD_SIGNATURE', 'high s', { field: `${field}.signature` })
  }
  let recovered: Uint8Array | null
  try {
    recovered = secp.recover(digest, bytes.subarray(0, 64), v === 27 ? 0 : 1, true)
  } catch (err) {
    throw new ProtocolError('BAD_SIGNATURE', 'r or s out of range', { field: `${field}.signature`, cause: err })
  }
  if (recovered == null || !sameBytes(recovered, key.bytes)) {
    throw new ProtocolError('BAD_SIGNATURE', 'signature does not match the data, domain or key', { field: `${field}.signature` })
  }
  return key.address
}

function checkDomainField (actual: bigint | string, expected: bigint | string, field: string): void {
  const same = typeof actual === 'string' && typeof expected === 'string'
    ? actual.toLowerCase() === expected.toLowerCase()
    : actual === expected
  if (!same) throw new ProtocolError('BAD_SIGNATURE', `${field} is not the domain's`, { field })
}

// --- per type: sign returns the signature to attach; verify returns the signer or throws ---

export function signVoucher (value: VoucherFields, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(voucherDigest(value, domain), key)
}
/** The renter must have signed, over the voucher's own chainId and contract, which must be `domain`'s. */
export function verifyVoucher (voucher: Voucher, domain: Eip712Domain): Address {
  checkDomainField(voucher.chainId, domain.chainId, 'chainId')
  checkDomainField(voucher.verifyingContract, domain.verifyingContract, 'verifyingContract')
  return verifyDigest(voucherDigest(voucher, domain), voucher.signature, voucher.renter)
}

export function signPeerBinding (value: PeerBindingFields, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(peerBindingDigest(value, domain), key)
}
export function verifyPeerBinding (binding: PeerBinding, domain: Eip712Domain): Address {
  return verifyDigest(peerBindingDigest(binding, domain), binding.proof, binding.payment, 'proof')
}

export function signFleetMembership (value: FleetMembershipFields, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(fleetMembershipDigest(value, domain), key)
}
export function verifyFleetMembership (membership: FleetMembership, domain: Eip712Domain): Address {
  return verifyDigest(fleetMembershipDigest(membership, domain), membership.proof, membership.operator, 'proof')
}

/** Signs an offer's `OfferCommitment` (the body is validated on the way). */
export function signOffer (value: OfferBody, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(offerDigest(value, domain), key)
}
/**
 * Verifies the whole offer: its signature by the bound payment key, the peer binding and, when
 * present, the fleet membership. Returns the payment address.
 */
export function verifyOffer (offer: Offer, domain: Eip712Domain): Address {
  checkDomainField(offer.chainId, domain.chainId, 'chainId')
  checkPart('binding', () => verifyPeerBinding(offer.binding, domain))
  const fleet = offer.fleet
  if (fleet != null) checkPart('fleet', () => verifyFleetMembership(fleet, domain))
  return verifyDigest(offerDigest(offer, domain), offer.signature, offer.binding.payment)
}

/** Runs a check of a nested part, prefixing the failing field with the part's name. */
function checkPart (part: string, check: () => unknown): void {
  try {
    check()
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err
    throw new ProtocolError(err.code, `${part}: ${err.message}`, { field: err.field == null ? part : `${part}.${err.field}`, cause: err })
  }
}

export function signOrder (value: OrderFields, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(orderDigest(value, domain), key)
}
/** The renter must have signed, on the domain's chain. */
export function verifyOrder (order: Order, domain: Eip712Domain): Address {
  checkDomainField(order.chainId, domain.chainId, 'chainId')
  return verifyDigest(orderDigest(order, domain), order.signature, order.renter)
}

export function signLeaseTerms (value: LeaseTerms, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(leaseTermsDigest(value, domain), key)
}
/** The provider must have signed, on the domain's chain. */
export function verifyLeaseTerms (terms: LeaseTerms, signature: PaymentSignature, domain: Eip712Domain): Address {
  checkDomainField(terms.chainId, domain.chainId, 'chainId')
  return verifyDigest(leaseTermsDigest(terms, domain), signature, terms.provider)
}

export function signJobAuth (value: JobAuthFields, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(jobAuthDigest(value, domain), key)
}
/** Returns the signer; the caller requires it to be the lease's renter (pass it as `expectedSigner`). */
export function verifyJobAuth (auth: JobAuth, domain: Eip712Domain, expectedSigner: string | null = null): Address {
  return verifyDigest(jobAuthDigest(auth, domain), auth.signature, expectedSigner)
}

export function signUsageReport (value: UsageReport, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(usageReportDigest(value, domain), key)
}
/** The report's provider must have signed. */
export function verifyUsageReport (signed: SignedUsageReport, domain: Eip712Domain): Address {
  return verifyDigest(usageReportDigest(signed.report, domain), signed.signature, signed.report.provider)
}

export function signTerminate (value: TerminateFields, key: PaymentKey, domain: Eip712Domain): PaymentSignature {
  return signDigest(terminateDigest(value, domain), key)
}
/** Returns the signer; the caller requires it to be the lease's provider or renter. */
export function verifyTerminate (terminate: Terminate, domain: Eip712Domain, expectedSigner: string | null = null): Address {
  return verifyDigest(terminateDigest(terminate, domain), terminate.signature, expectedSigner)
}
