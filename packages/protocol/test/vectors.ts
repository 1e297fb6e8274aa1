/** Builds the EIP-712 test vectors (test/fixtures/vectors.json) from the sample messages. */
import {
  bytesToHex, fleetMembershipDigest, fleetRequestDigest, fleetRevocationDigest, signDigest, jobAuthDigest, leaseTermsDigest, offerDigest, orderDigest, peerBindingDigest,
  signFleetMembership, signJobAuth, signLeaseTerms, signOffer, signOrder, signPeerBinding, signTerminate,
  signUsageReport, signVoucher, terminateDigest, toWire, typedData, usageReportDigest, voucherDigest
} from '@gpumesh/protocol'
import type { Eip712Domain, PaymentKey, PaymentSignature, SignedTypeName } from '@gpumesh/protocol'
import {
  DOMAIN, OPERATOR_KEY, PROVIDER_KEY, RENTER_KEY, sampleJobAuth, sampleOffer, sampleOrder, sampleReport, sampleTerminate,
  sampleTerms, sampleVoucher
} from './samples.js'

export interface Vector {
  primaryType: SignedTypeName
  privateKey: string
  signer: string
  /** The package's value, in wire form (bigints as decimal strings). */
  value: unknown
  /** The EIP-712 payload in wire form, as a wallet would sign it. */
  typedData: unknown
  digest: string
  signature: PaymentSignature
}

interface Case<T> {
  primaryType: SignedTypeName
  value: T
  key: PaymentKey
  signer: string
  digest: (v: T, d: Eip712Domain) => Uint8Array
  sign: (v: T, k: PaymentKey, d: Eip712Domain) => PaymentSignature
}

const signWith = <T>(digest: (v: T, d: Eip712Domain) => Uint8Array) => (v: T, k: PaymentKey, d: Eip712Domain): PaymentSignature => signDigest(digest(v, d), k)

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function vectorCases (): Array<Case<any>> {
  const offer = sampleOffer()
  const { signature: _s, ...offerBody } = offer
  const { signature: _o, type: _t, chainId: _c, ...orderFields } = sampleOrder()
  const voucher = sampleVoucher()
  const voucherFields = { leaseId: voucher.leaseId, provider: voucher.provider, renter: voucher.renter, token: voucher.token, cumulativeAmount: voucher.cumulativeAmount, sequence: voucher.sequence }
  const auth = sampleJobAuth()
  const terminate = sampleTerminate()
  const fleet = offer.fleet
  if (fleet == null) throw new Error('sample offer has a fleet')
  return [
    { primaryType: 'Voucher', value: voucherFields, key: RENTER_KEY, signer: voucher.renter, digest: voucherDigest, sign: signVoucher },
    { primaryType: 'PeerBinding', value: { peerId: offer.peerId, payment: offer.binding.payment }, key: PROVIDER_KEY, signer: offer.binding.payment, digest: peerBindingDigest, sign: signPeerBinding },
    { primaryType: 'FleetMembership', value: { operator: fleet.operator, member: fleet.member, peerId: fleet.peerId, expiresAt: fleet.expiresAt }, key: OPERATOR_KEY, signer: fleet.operator, digest: fleetMembershipDigest, sign: signFleetMembership },
    { primaryType: 'OfferCommitment', value: offerBody, key: PROVIDER_KEY, signer: offer.binding.payment, digest: offerDigest, sign: signOffer },
    { primaryType: 'Order', value: orderFields, key: RENTER_KEY, signer: orderFields.renter, digest: orderDigest, sign: signOrder },
    { primaryType: 'LeaseTerms', value: sampleTerms(), key: PROVIDER_KEY, signer: sampleTerms().provider, digest: leaseTermsDigest, sign: signLeaseTerms },
    { primaryType: 'JobAuth', value: { leaseId: auth.leaseId, peerId: auth.peerId }, key: RENTER_KEY, signer: voucher.renter, digest: jobAuthDigest, sign: signJobAuth },
    { primaryType: 'UsageReport', value: sampleReport(), key: PROVIDER_KEY, signer: sampleReport().provider, digest: usageReportDigest, sign: signUsageReport },
    { primaryType: 'Terminate', value: { leaseId: terminate.leaseId, reason: terminate.reason, at: terminate.at }, key: RENTER_KEY, signer: voucher.renter, digest: terminateDigest, sign: signTerminate },
    { primaryType: 'FleetRevocation', value: { operator: fleet.operator, peerId: fleet.peerId, revokedAt: 1_700_000_000_000 }, key: OPERATOR_KEY, signer: fleet.operator, digest: fleetRevocationDigest, sign: signWith(fleetRevocationDigest) },
    {
      primaryType: 'FleetRequest',
      value: { kind: 'status', operator: fleet.operator, asker: auth.peerId, member: fleet.peerId, nonce: voucher.leaseId, issuedAt: 1_700_000_000_000, expiresAt: 1_700_000_030_000 },
      key: OPERATOR_KEY,
      signer: fleet.operator,
      digest: fleetRequestDigest,
      sign: signWith(fleetRequestDigest)
    }
  ]
}

export function buildVectors (): { domain: unknown, vectors: Vector[] } {
  return {
    domain: toWire(DOMAIN),
    vectors: vectorCases().map((c) => ({
      primaryType: c.primaryType,
      privateKey: c.key as string,
      signer: c.signer,
      value: toWire(c.value),
      typedData: toWire(typedData(c.primaryType, c.value as never, DOMAIN)),
      digest: bytesToHex(c.digest(c.value, DOMAIN)),
      signature: c.sign(c.value, c.key, DOMAIN)
    }))
  }
}
