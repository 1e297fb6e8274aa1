import { Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import { ZERO_ADDRESS as ZERO, cumulativeAmount, marketDomain, signUsageReport, type LeaseTerms, type SignedUsageReport, type UsageReport } from '@gpumesh/protocol'
import { PaymentPolicy, ReportRefusedError } from '../src/index.js'

const provider = new Wallet('0x' + '11'.repeat(32))
const stranger = new Wallet('0x' + '22'.repeat(32))
const renter = new Wallet('0x' + '33'.repeat(32))
const domain = marketDomain(31337n)

const terms: LeaseTerms = {
  leaseId: `0x${'ab'.repeat(32)}`,
  orderId: `0x${'cd'.repeat(32)}`,
  provider: provider.address as `0x${string}`,
  providerPeerId: '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq',
  renter: renter.address as `0x${string}`,
  renterPeerId: '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq',
  token: ZERO,
  chainId: 31337n,
  escrow: '0x0000000000000000000000000000000000000000',
  pricePerGpuHour: 2_490_000n,
  gpus: ['GPU-a', 'GPU-b'],
  gpuClass: 'H100-SXM-80GB',
  durationSec: 3600,
  billingIntervalSec: 60,
  paymentGraceSec: 60,
  startDeadline: 2_000_000_000_000,
  jobHash: `0x${'ef'.repeat(32)}`,
  providerAddresses: ['/ip4/127.0.0.1/tcp/4001'],
  acceptedAt: 1_900_000_000_000
}

function report (index: number, startMs: number, endMs: number, over: Partial<UsageReport> = {}, key: Wallet = provider): SignedUsageReport {
  const gpus = BigInt(terms.gpus.length)
  const before = cumulativeAmount(terms.pricePerGpuHour, gpus * BigInt(startMs))
  const total = cumulativeAmount(terms.pricePerGpuHour, gpus * BigInt(endMs))
  const value: UsageReport = {
    leaseId: terms.leaseId, provider: terms.provider, renter: terms.renter, token: terms.token,
    periodIndex: index, startOffsetMs: startMs, endOffsetMs: endMs,
    gpuMilliseconds: gpus * BigInt(endMs - startMs), amount: total - before, cumulativeAmount: total,
    avgUtilizationBp: 9_000, peakMemoryMiB: 1000, energyMilliJoules: 5n, final: false, ...over
  }
  return { report: value, signature: signUsageReport(value, key, domain) }
}

function refusal (fn: () => unknown): string {
  try { fn() } catch (err) { expect(err).toBeInstanceOf(ReportRefusedError); return (err as ReportRefusedError).code }
  throw new Error('expected a refusal')
}

describe('renter payment policy', () => {
  it('signs for consecutive honest periods with rising cumulative amounts and sequences', () => {
    const policy = new PaymentPolicy({ terms, marketDomain: domain, budget: 10n ** 9n })
    const a = policy.check(report(0, 0, 60_000), 60_100)
    const b = policy.check(report(1, 60_000, 120_000), 120_050)
    expect(a).toEqual({ cumulativeAmount: 83_000n, sequence: 1n })
    expect(b).toEqual({ cumulativeAmount: 166_000n, sequence: 2n })
    expect(policy.paid).toBe(166_000n)
  })

  it('refuses a report signed by another key, for another lease, out of order or beyond the lease', () => {
    const policy = new PaymentPolicy({ terms, marketDomain: domain, budget: 10n ** 9n })
    expect(refusal(() => policy.check(report(0, 0, 60_000, {}, stranger), 60_000))).toBe('BAD_SIGNATURE')
    expect(refusal(() => policy.check(report(0, 0, 60_000, { leaseId: `0x${'99'.repeat(32)}` }), 60_000))).toBe('WRONG_LEASE')
    expect(refusal(() => policy.check(report(1, 0, 60_000), 60_000))).toBe('OUT_OF_ORDER')
    expect(refusal(() => policy.check(report(0, 0, 3_700_000), 3_700_000))).toBe('BEYOND_LEASE')
    // Nothing was accepted, so the honest first period still goes through.
    expect(policy.check(report(0, 0, 60_000), 60_000).sequence).toBe(1n)
  })

  it('refuses to pay for time it did not observe, beyond the tolerance', () => {
    const policy = new PaymentPolicy({ terms, marketDomain: domain, budget: 10n ** 9n, clockToleranceMs: 1_000 })
    expect(refusal(() => policy.check(report(0, 0, 60_000), 58_000))).toBe('AHEAD_OF_CLOCK')
    expect(policy.check(report(0, 0, 60_000), 59_000).cumulativeAmount).toBe(83_000n)
  })

  it('refuses an amount that does not follow the billing rule', () => {
    const policy = new PaymentPolicy({ terms, marketDomain: domain, budget: 10n ** 9n })
    expect(refusal(() => policy.check(report(0, 0, 60_000, { cumulativeAmount: 83_001n, amount: 83_001n }), 60_000))).toBe('WRONG_AMOUNT')
    expect(refusal(() => policy.check(report(0, 0, 60_000, { gpuMilliseconds: 999_999n }), 60_000))).toBe('WRONG_AMOUNT')
  })

  it('stops signing once the budget would be exceeded', () => {
    const policy = new PaymentPolicy({ terms, marketDomain: domain, budget: 100_000n })
    policy.check(report(0, 0, 60_000), 60_000)
    expect(policy.budgetSpent).toBe(false)
    expect(refusal(() => policy.check(report(1, 60_000, 120_000), 120_000))).toBe('BUDGET_SPENT')
    expect(policy.paid).toBe(83_000n)
  })
})
