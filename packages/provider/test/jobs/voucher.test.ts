import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ZERO_ADDRESS, signVoucher, type Voucher, type VoucherFields } from '@gpumesh/protocol'
import { acceptVoucher, closeUsagePeriod } from '../../src/jobs/index.js'
import { CHAIN_ID, OTHER_KEY, PROVIDER, PROVIDER_KEY, RENTER, RENTER_KEY, TOKEN, hex32, makeLease, testLedger, type TestLedger } from './helpers.js'


describe('voucher acceptance', () => {
  let t: TestLedger
  let leaseId: `0x${string}`

  beforeEach(() => {
    t = testLedger()
    leaseId = makeLease(t.ledger, { running: true })
    const lease = t.ledger.getLease(leaseId)
    if (lease === null) throw new Error('no lease')
    // Report 10 s on 2 GPUs at 3.6 units/GPU-hour·1e6 → 20_000 base units.
    closeUsagePeriod(t.ledger, lease, { paymentKey: PROVIDER_KEY },
      { index: 0, startOffsetMs: 0, endOffsetMs: 10_000, final: false, previousCumulative: 0n })
  })
  afterEach(() => { t.cleanup() })

  function voucher (over: Partial<VoucherFields & Pick<Voucher, 'chainId' | 'verifyingContract'>> = {}, key = RENTER_KEY): Voucher {
    const fields: VoucherFields = { leaseId, provider: PROVIDER, renter: RENTER, token: TOKEN, cumulativeAmount: 10_000n, sequence: 1n, ...over }
    const domain = { chainId: over.chainId ?? CHAIN_ID, verifyingContract: over.verifyingContract ?? ZERO_ADDRESS }
    return { type: 'voucher', ...fields, ...domain, signature: signVoucher(fields, key, domain) }
  }
  const refusal = (v: Voucher): string => {
    try { acceptVoucher(t.ledger, v, leaseId) } catch (err) {
      expect((err as Error).name).toBe('VoucherRefusedError')
      return (err as { code: string }).code
    }
    return 'ACCEPTED'
  }

  it('accepts a good voucher, stores it, and takes an exact resend as a duplicate', () => {
    expect(t.ledger.lastUsagePeriod(leaseId)?.cumulativeAmount).toBe(20_000n)
    const v = voucher()
    expect(acceptVoucher(t.ledger, v)).toMatchObject({ stored: true, cumulativeAmount: 10_000n })
    expect(acceptVoucher(t.ledger, v).stored).toBe(false)
    expect(t.ledger.latestVoucher(leaseId)?.sequence).toBe(1n)
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 20_000n }))).toBe('ACCEPTED')
  })

  it('refuses each kind of bad voucher with its code', () => {
    acceptVoucher(t.ledger, voucher())
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 20_001n }))).toBe('AMOUNT_ABOVE_REPORTED')
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 15_000n }, OTHER_KEY))).toBe('WRONG_SIGNER')
    expect(refusal(voucher({ sequence: 1n, cumulativeAmount: 15_000n }))).toBe('SEQUENCE_NOT_HIGHER')
    expect(refusal(voucher({ sequence: 0n, cumulativeAmount: 15_000n }))).toBe('SEQUENCE_NOT_HIGHER')
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 10_000n }))).toBe('AMOUNT_NOT_HIGHER')
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 15_000n, leaseId: hex32('another lease') }))).toBe('WRONG_LEASE')
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 15_000n, provider: RENTER }))).toBe('WRONG_PROVIDER')
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 15_000n, token: ZERO_ADDRESS }))).toBe('WRONG_TOKEN')
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 15_000n, chainId: 1n }))).toBe('WRONG_DOMAIN')
    expect(refusal(voucher({ sequence: 2n, cumulativeAmount: 15_000n, renter: PROVIDER }, PROVIDER_KEY))).toBe('WRONG_SIGNER')
    const tampered = voucher({ sequence: 2n, cumulativeAmount: 15_000n })
    expect(refusal({ ...tampered, cumulativeAmount: 16_000n })).toBe('BAD_SIGNATURE')
    expect(t.ledger.vouchers(leaseId)).toHaveLength(1)
  })

  it('refuses a voucher for a lease the ledger does not know', () => {
    const v = voucher({ leaseId: hex32('unknown') })
    expect(() => acceptVoucher(t.ledger, v)).toThrow(expect.objectContaining({ code: 'WRONG_LEASE' }))
  })
})
