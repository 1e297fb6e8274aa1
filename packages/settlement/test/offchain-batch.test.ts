/**
 * Off-chain batches: what `gpumesh settle export` writes must verify with nothing but a standard
 * EIP-712 library (ethers' `verifyTypedData` here), and every tampering a payer could meet is named.
 */
import { randomBytes } from 'node:crypto'
import { Signature, Wallet, verifyTypedData, type BaseWallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  ZERO_ADDRESS, bytesToHex, cumulativeAmount, marketDomain, settlementDomain, signLeaseTerms, signUsageReport, signVoucher
} from '@gpumesh/protocol'
import type { Address, Bytes32, LeaseTerms, SignedUsageReport, UsageReport, Voucher } from '@gpumesh/protocol'
import { buildSettlementBatch, verifySettlementBatch, type BatchEntryInput, type SettlementBatch } from '../src/offchain-batch.js'

const CHAIN_ID = 31337n
const TOKEN = '0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238' as Address
const PRICE = 2_000_000n
const provider = Wallet.createRandom()
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

function lease (renter: BaseWallet, escrow: Address = ZERO_ADDRESS): LeaseTerms {
  return {
    leaseId: bytesToHex(randomBytes(32)) as Bytes32,
    orderId: bytesToHex(randomBytes(32)) as Bytes32,
    provider: provider.address as Address,
    providerPeerId: '12D3KooWJ5m5yzjd8iEChH1GqSEs7oD6tWK7nJUdYvWqjnMyC1kc',
    renter: renter.address as Address,
    renterPeerId: '12D3KooWJ5m5yzjd8iEChH1GqSEs7oD6tWK7nJUdYvWqjnMyC1kc',
    token: TOKEN,
    chainId: CHAIN_ID,
    escrow,
    pricePerGpuHour: PRICE,
    gpus: ['GPU-a', 'GPU-b'],
    gpuClass: 'H100-SXM-80GB',
    durationSec: 3600,
    billingIntervalSec: 60,
    paymentGraceSec: 60,
    startDeadline: 1_700_000_300_000,
    jobHash: bytesToHex(randomBytes(32)) as Bytes32,
    providerAddresses: ['/ip4/127.0.0.1/tcp/4001'],
    acceptedAt: 1_700_000_000_000
  }
}

function entry (renter: BaseWallet, options: { endOffsetMs?: number, sequence?: bigint, previous?: BatchEntryInput['previous'], paidFraction?: bigint } = {}): BatchEntryInput {
  const terms = lease(renter)
  const end = options.endOffsetMs ?? 180_000
  const cumulative = cumulativeAmount(PRICE, BigInt(end) * 2n)
  const report: UsageReport = {
    leaseId: terms.leaseId, provider: terms.provider, renter: terms.renter, token: terms.token, periodIndex: 2,
    startOffsetMs: end - 60_000, endOffsetMs: end, gpuMilliseconds: 120_000n,
    amount: cumulative - cumulativeAmount(PRICE, BigInt(end - 60_000) * 2n), cumulativeAmount: cumulative,
    avgUtilizationBp: 9_000, peakMemoryMiB: 40_000, energyMilliJoules: null, final: true
  }
  const usage: SignedUsageReport = { report, signature: signUsageReport(report, provider, marketDomain(CHAIN_ID)) }
  const fields = { leaseId: terms.leaseId, provider: terms.provider, renter: terms.renter, token: terms.token, cumulativeAmount: cumulative, sequence: options.sequence ?? 3n }
  const voucher: Voucher = { type: 'voucher', ...fields, ...settlementDomainFields(terms), signature: signVoucher(fields, renter, settlementDomain(terms)) }
  return { voucher, terms: { terms, signature: signLeaseTerms(terms, provider, marketDomain(CHAIN_ID)) }, usage, previous: options.previous ?? null }
}

function settlementDomainFields (terms: LeaseTerms): { chainId: bigint, verifyingContract: Address } {
  const d = settlementDomain(terms)
  return { chainId: d.chainId, verifyingContract: d.verifyingContract }
}

function batchOf (entries: BatchEntryInput[]): SettlementBatch {
  // Through JSON, as a payer reads it from the file.
  return JSON.parse(JSON.stringify(buildSettlementBatch({ provider: provider.address as Address, createdAt: 1_700_000_900_000, entries }))) as SettlementBatch
}

describe('off-chain settlement batches', () => {
  const alice = Wallet.createRandom()
  const bob = Wallet.createRandom()

  it('verifies entry by entry and totals per token; a plain ethers verifyTypedData call agrees', () => {
    const batch = batchOf([entry(alice), entry(bob, { previous: { sequence: 1n, cumulativeAmount: 100_000n } })])
    const result = verifySettlementBatch(batch)
    expect(result.problems).toEqual([])
    expect(result.entries.map((e) => e.problems)).toEqual([[], []])
    expect(result.ok).toBe(true)
    const full = cumulativeAmount(PRICE, 180_000n * 2n)
    expect(result.totals).toEqual([{ chainId: '31337', token: TOKEN, amountDue: 2n * full - 100_000n, entries: 2 }])
    expect(batch.totals).toEqual([{ chainId: '31337', token: TOKEN, amountDue: (2n * full - 100_000n).toString(), entries: 2 }])

    // Nothing of gpumesh: the published types, the domain, the message and the signature.
    for (const [i, renter] of [alice, bob].entries()) {
      const e = batch.entries[i]
      if (e === undefined) throw new Error('entry missing')
      const types = { Voucher: batch.types.Voucher ?? [] }
      expect(verifyTypedData(e.voucher.domain, types, e.voucher.message, e.voucher.signature)).toBe(renter.address)
      expect(verifyTypedData(e.terms.domain, { LeaseTerms: batch.types.LeaseTerms ?? [] }, e.terms.message, e.terms.signature)).toBe(provider.address)
    }
  })

  it('takes a voucher signed by a standard wallet (signTypedData) exactly like one signed by gpumesh', async () => {
    const e = entry(alice)
    const batch = batchOf([e])
    const v = batch.entries[0]
    if (v === undefined) throw new Error('entry missing')
    const walletSignature = await alice.signTypedData(v.voucher.domain, { Voucher: batch.types.Voucher ?? [] }, v.voucher.message)
    expect(walletSignature).toBe(e.voucher.signature.signature)
    v.voucher.signature = walletSignature
    expect(verifySettlementBatch(batch).ok).toBe(true)
  })

  it('names every bad entry and why, and still totals the good ones', () => {
    const batch = batchOf([entry(alice), entry(bob), entry(alice), entry(bob), entry(alice), entry(bob, { sequence: 2n, previous: { sequence: 2n, cumulativeAmount: 0n } }), entry(alice)])
    const [good, raised, forged, otherChain, highS, stale, badDue] = batch.entries
    if (good === undefined || raised === undefined || forged === undefined || otherChain === undefined || highS === undefined || stale === undefined || badDue === undefined) throw new Error('entries missing')
    raised.voucher.message.cumulativeAmount = '999999999'
    forged.voucher.signer = bob.address
    otherChain.voucher.domain.chainId = '1'
    const sig = Signature.from(highS.voucher.signature)
    // The same (r, s) with s mirrored above n/2 and v flipped: an equally valid but malleable signature.
    highS.voucher.signature = sig.r + (N - BigInt(sig.s)).toString(16).padStart(64, '0') + (sig.v === 27 ? '1c' : '1b')
    badDue.amountDue = '1'

    const result = verifySettlementBatch(batch)
    expect(result.ok).toBe(false)
    const problems = result.entries.map((e) => e.problems.join(' | '))
    expect(problems[0]).toBe('')
    expect(problems[1]).toMatch(/the voucher: signed by 0x[0-9a-fA-F]{40}, not by/)
    expect(problems[2]).toMatch(/the voucher: signed by 0x[0-9a-fA-F]{40}, not by/)
    expect(problems[3]).toMatch(/the voucher: signed by/)
    expect(problems[4]).toContain('high-s')
    expect(problems[5]).toContain('voucher sequence 2 is not above the 2 settled before')
    expect(problems[6]).toContain('1 is listed, but the voucher less what was settled before is')
    // The listed total covers all seven; the recomputed one only the good entry.
    expect(result.totals.map((t) => t.entries)).toEqual([1])
    expect(result.problems.join(' ')).toMatch(/the entries that verify add up to/)
  })

  it('checks the newest usage report against the billing rule and the lease terms', () => {
    const batch = batchOf([entry(alice), entry(bob)])
    const [inflated, otherLease] = batch.entries
    if (inflated === undefined || otherLease === undefined) throw new Error('entries missing')
    if (inflated.usage === null || otherLease.usage === null) throw new Error('usage missing')
    // A usage report whose amount does not follow from its time (re-signed by the provider, so only the rule catches it).
    inflated.usage.message.cumulativeAmount = '1'
    const result = verifySettlementBatch(batch)
    expect(result.entries[0]?.problems.join(' ')).toMatch(/the usage report: signed by/)
    otherLease.terms.message.renter = alice.address
    expect(verifySettlementBatch(batch).entries[1]?.problems.join(' ')).toMatch(/the lease terms: signed by/)
  })

  it('refuses a voucher signed for another escrow than the lease terms name, and duplicates', () => {
    const e = entry(alice)
    const batch = batchOf([e, e])
    batch.entries[0]!.voucher.domain.verifyingContract = '0x5FbDB2315678afecb367f032d93F642f64180aa3'
    const result = verifySettlementBatch(batch)
    expect(result.entries[0]?.problems.join(' ')).toMatch(/the voucher: signed by/)
    expect(result.entries[1]?.problems).toEqual(['repeats a lease already in this batch'])
  })

  it('reads garbage as problems, never as an exception', () => {
    for (const input of [null, 42, 'x', [], { format: 'other' }, { format: 'gpumesh-settlement-batch', version: 1, types: {}, entries: [null, {}, { leaseId: 'x', voucher: 1 }], totals: 'no' }]) {
      const result = verifySettlementBatch(input)
      expect(result.ok).toBe(false)
    }
  })
})
