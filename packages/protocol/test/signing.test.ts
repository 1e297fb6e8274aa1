import { SigningKey, Signature, verifyTypedData } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  ProtocolError, bytesToHex, ethersDomain, EIP712_TYPES, signVoucher, typedData, verifyDigest, verifyJobAuth,
  verifyLeaseTerms, verifyOffer, verifyOrder, verifyTerminate, verifyUsageReport, verifyVoucher, voucherDigest,
  signLeaseTerms, signOffer
} from '@gpumesh/protocol'
import type { Address, Eip712Domain, PaymentSignature, Voucher } from '@gpumesh/protocol'
import {
  DOMAIN, OPERATOR, PROVIDER, PROVIDER_KEY, RENTER, RENTER_KEY, RENTER_PEER, renterWallet, sampleJobAuth, sampleOffer,
  sampleOrder, sampleSignedReport, sampleTerminate, sampleTerms, sampleVoucher
} from './samples.js'

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

function badSignature (fn: () => unknown): ProtocolError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
    expect((err as ProtocolError).code).toBe('BAD_SIGNATURE')
    return err as ProtocolError
  }
  throw new Error('expected BAD_SIGNATURE')
}

/** What ethers says about a voucher: the recovered signer equals the renter. */
function ethersAccepts (voucher: Voucher, domain: Eip712Domain = DOMAIN): boolean {
  try {
    const payload = typedData('Voucher', voucher, domain)
    return verifyTypedData(ethersDomain(domain), { Voucher: EIP712_TYPES.Voucher }, payload.message, voucher.signature.signature) === voucher.renter
  } catch {
    return false
  }
}

function oursAccepts (voucher: Voucher, domain: Eip712Domain = DOMAIN): boolean {
  try {
    return verifyVoucher(voucher, domain) === voucher.renter
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
    return false
  }
}

function highS (signature: PaymentSignature): PaymentSignature {
  const sig = Signature.from(signature.signature)
  const s = N - BigInt(sig.s)
  const bytes = Buffer.from(signature.signature.slice(2), 'hex')
  Buffer.from(s.toString(16).padStart(64, '0'), 'hex').copy(bytes, 32)
  bytes[64] = sig.v === 27 ? 28 : 27
  return { ...signature, signature: `0x${bytes.toString('hex')}` }
}

describe('signing', () => {
  it('produces the same signature as ethers (RFC 6979, low s)', () => {
    const voucher = sampleVoucher()
    const digest = voucherDigest(voucher, DOMAIN)
    expect(voucher.signature.signature).toBe(new SigningKey(RENTER_KEY).sign(digest).serialized)
    expect(voucher.signature.publicKey).toBe(new SigningKey(RENTER_KEY).compressedPublicKey)
    expect(signVoucher(voucher, renterWallet, DOMAIN)).toEqual(voucher.signature)
    expect(signVoucher(voucher, renterWallet.signingKey, DOMAIN)).toEqual(voucher.signature)
  })

  it('verifies every signed message and returns the signer', () => {
    expect(verifyVoucher(sampleVoucher(), DOMAIN)).toBe(RENTER)
    expect(verifyOrder(sampleOrder(), DOMAIN)).toBe(RENTER)
    expect(verifyOffer(sampleOffer(), DOMAIN)).toBe(PROVIDER)
    expect(verifyUsageReport(sampleSignedReport(), DOMAIN)).toBe(PROVIDER)
    const terms = sampleTerms()
    expect(verifyLeaseTerms(terms, signLeaseTerms(terms, PROVIDER_KEY, DOMAIN), DOMAIN)).toBe(PROVIDER)
    expect(verifyJobAuth(sampleJobAuth(), DOMAIN, RENTER)).toBe(RENTER)
    expect(verifyTerminate(sampleTerminate(), DOMAIN)).toBe(RENTER)
  })
})

describe('fast verification agrees with ethers.verifyTypedData', () => {
  const valid = sampleVoucher()
  const other: Address = '0x000000000000000000000000000000000000dEaD'
  const cases: Array<[string, Voucher, Eip712Domain?]> = [
    ['valid', valid],
    ['tampered amount', { ...valid, cumulativeAmount: valid.cumulativeAmount + 1n }],
    ['tampered sequence', { ...valid, sequence: valid.sequence + 1n }],
    ['tampered lease', { ...valid, leaseId: `0x${'a2'.repeat(32)}` }],
    ['tampered provider', { ...valid, provider: other }],
    ['tampered token', { ...valid, token: other }],
    ['claims another renter', { ...valid, renter: PROVIDER }],
    ['flipped v', { ...valid, signature: { ...valid.signature, signature: `0x${valid.signature.signature.slice(2, -2)}${valid.signature.signature.endsWith('1b') ? '1c' : '1b'}` } }],
    ['flipped bit in r', { ...valid, signature: { ...valid.signature, signature: `0x${(BigInt(valid.signature.signature.slice(0, 66)) ^ 1n).toString(16).padStart(64, '0')}${valid.signature.signature.slice(66)}` } }],
    ['high s', { ...valid, signature: highS(valid.signature) }],
    ['other chain', { ...valid, chainId: 1n }, { ...DOMAIN, chainId: 1n }],
    ['other contract', { ...valid, verifyingContract: other }, { ...DOMAIN, verifyingContract: other }]
  ]
  for (const [name, voucher, domain] of cases) {
    it(name, () => {
      expect(oursAccepts(voucher, domain)).toBe(ethersAccepts(voucher, domain))
      expect(oursAccepts(voucher, domain)).toBe(name === 'valid')
    })
  }

  it('rejects a domain other than the voucher names', () => {
    const err = badSignature(() => verifyVoucher(valid, { ...DOMAIN, chainId: 1n }))
    expect(err.field).toBe('chainId')
    expect(badSignature(() => verifyVoucher(valid, { ...DOMAIN, verifyingContract: other })).field).toBe('verifyingContract')
  })

  it('rejects a public key that does not match the claimed address', () => {
    const wrongKey = { ...valid, signature: { ...valid.signature, publicKey: new SigningKey(PROVIDER_KEY).compressedPublicKey as `0x${string}` } }
    expect(badSignature(() => verifyVoucher(wrongKey, DOMAIN)).field).toBe('signature.publicKey')
    // the key of the claimed address, but the signature was made by another key
    const byProvider = signVoucher(valid, PROVIDER_KEY, DOMAIN)
    const mixed = { ...valid, signature: { publicKey: valid.signature.publicKey, signature: byProvider.signature } }
    expect(badSignature(() => verifyVoucher(mixed, DOMAIN)).field).toBe('signature.signature')
    expect(ethersAccepts(mixed)).toBe(false)
  })

  it('rejects keys that are not points and signatures out of range', () => {
    const notPoint = { ...valid, signature: { ...valid.signature, publicKey: `0x02${'ff'.repeat(32)}` as `0x${string}` } }
    badSignature(() => verifyVoucher(notPoint, DOMAIN))
    const zero = { ...valid, signature: { ...valid.signature, signature: `0x${'00'.repeat(64)}1b` as `0x${string}` } }
    badSignature(() => verifyVoucher(zero, DOMAIN))
    const digest = voucherDigest(valid, DOMAIN)
    badSignature(() => verifyDigest(digest, { ...valid.signature, signature: `0x${'ff'.repeat(65)}` }))
  })

  it('names the nested part of an offer whose proof fails', () => {
    const offer = sampleOffer()
    const fleet = offer.fleet
    if (fleet == null) throw new Error('sample offer has a fleet')
    const badFleet = { ...offer, fleet: { ...fleet, expiresAt: fleet.expiresAt + 1 } }
    expect(badSignature(() => verifyOffer(badFleet, DOMAIN)).field).toBe('fleet.proof.signature')
    const badBinding = { ...offer, binding: { ...offer.binding, proof: fleet.proof } }
    expect(badSignature(() => verifyOffer(badBinding, DOMAIN)).field).toBe('binding.proof.publicKey')
    const { signature: _s, ...body } = offer
    const resigned = { ...offer, sequence: 43 }
    expect(badSignature(() => verifyOffer(resigned, DOMAIN)).field).toBe('signature.signature')
    expect(verifyOffer({ ...resigned, signature: signOffer({ ...body, sequence: 43 }, PROVIDER_KEY, DOMAIN) }, DOMAIN)).toBe(PROVIDER)
    expect(OPERATOR).not.toBe(PROVIDER)
  })

  it('job auth and terminate check the expected signer', () => {
    expect(badSignature(() => verifyJobAuth(sampleJobAuth(), DOMAIN, PROVIDER)).field).toBe('signature.publicKey')
    const auth = { ...sampleJobAuth(), peerId: RENTER_PEER.replace('W', 'X') }
    badSignature(() => verifyJobAuth(auth, DOMAIN, RENTER))
    expect(bytesToHex(new Uint8Array([0, 255]))).toBe('0x00ff')
  })
})
