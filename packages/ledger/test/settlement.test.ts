import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ZERO_ADDRESS } from '@gpumesh/protocol'
import { openLedger } from '@gpumesh/ledger'
import type { Address, Ledger } from '@gpumesh/ledger'
import { closeTestLedger, gpus, leaseInput, openTestLedger } from './helpers.js'
import type { FakeClock, TempDir } from './helpers.js'

const ESCROW = '0x5555555555555555555555555555555555555555' as Address
const OTHER_RENTER = '0x6666666666666666666666666666666666666666' as Address

let dir: TempDir
let clock: FakeClock
let ledger: Ledger

beforeEach(() => {
  ;({ dir, clock, ledger } = openTestLedger())
})
afterEach(() => { closeTestLedger({ dir, ledger }) })

function lease (n: number, escrow: Address = ESCROW, renter?: Address): string {
  const input = leaseInput(n, { escrow, ...(renter === undefined ? {} : { renter }) })
  ledger.reserveLease(input)
  ledger.transitionLease(input.leaseId, 'running', 'job started')
  return input.leaseId
}

function voucher (leaseId: string, sequence: bigint, cumulativeAmount: bigint): void {
  ledger.recordVoucher({ leaseId, sequence, cumulativeAmount, signature: `0x${'ab'.repeat(65)}`, body: JSON.stringify({ sequence: String(sequence) }) })
}

function period (leaseId: string, index: number, cumulative: bigint, previous: bigint): void {
  ledger.appendUsagePeriod({
    leaseId, periodIndex: index, startOffsetMs: index * 60_000, endOffsetMs: (index + 1) * 60_000, gpuMs: 60_000n,
    amount: cumulative - previous, cumulativeAmount: cumulative, avgUtilizationBp: null, peakMemoryMiB: null, energyMj: null,
    final: false, report: '{}'
  })
}

describe('lease escrow', () => {
  it('defaults to the zero address (off-chain) and keeps the one given', () => {
    const offchain = lease(1, ZERO_ADDRESS)
    const input = leaseInput(2)
    ledger.reserveLease(input)
    expect(ledger.getLease(input.leaseId)?.escrow).toBe(ZERO_ADDRESS)
    expect(ledger.getLease(offchain)?.escrow).toBe(ZERO_ADDRESS)
    expect(ledger.getLease(lease(3))?.escrow).toBe(ESCROW)
    expect(() => ledger.reserveLease(leaseInput(4, { escrow: '0x12' as Address }))).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'escrow' }))
  })

  it('migrates a version 1 file: its leases settle off-chain', () => {
    const path = dir.file('v1.db')
    const v1 = openLedger(path, { clock })
    v1.close()
    const db = new Database(path)
    // Back to version 1 as an older gpumesh left it: no V2 objects.
    db.exec(`DROP TABLE lease_settlement; DROP TABLE settlement_entries; DROP INDEX settlements_state;
      ALTER TABLE settlements DROP COLUMN gas_used; ALTER TABLE settlements DROP COLUMN block_number; ALTER TABLE settlements DROP COLUMN error;
      ALTER TABLE leases DROP COLUMN escrow; PRAGMA user_version = 1;`)
    db.close()
    const reopened = openLedger(path, { clock })
    try {
      reopened.upsertGpus(gpus(1))
      const input = leaseInput(9, { escrow: undefined })
      reopened.reserveLease(input)
      expect(reopened.getLease(input.leaseId)?.escrow).toBe(ZERO_ADDRESS)
    } finally {
      reopened.close()
    }
  })
})

describe('on-chain batches', () => {
  it('offers the newest voucher of each lease above what was redeemed, by kind and filters', () => {
    const a = lease(1)
    const b = lease(2)
    const off = lease(3, ZERO_ADDRESS)
    voucher(a, 1n, 100n)
    voucher(a, 2n, 250n)
    clock.advance(1000)
    voucher(b, 1n, 40n)
    voucher(off, 1n, 70n)
    const onchain = ledger.unsettledVouchers({ kind: 'onchain' })
    expect(onchain.map((u) => [u.lease.leaseId, u.voucher.sequence, u.voucher.cumulativeAmount, u.settled, u.unsettled]))
      .toEqual([[a, 2n, 250n, 0n, 250n], [b, 1n, 40n, 0n, 40n]])
    expect(ledger.unsettledVouchers({ kind: 'onchain', minAmount: 50n }).map((u) => u.lease.leaseId)).toEqual([a])
    expect(ledger.unsettledVouchers({ kind: 'onchain', since: clock.now() }).map((u) => u.lease.leaseId)).toEqual([b])
    expect(ledger.unsettledVouchers({ kind: 'onchain', escrow: OTHER_RENTER })).toEqual([])
    expect(ledger.unsettledVouchers({ kind: 'offchain' }).map((u) => u.lease.leaseId)).toEqual([off])
  })

  it('moves a batch pending → submitted → confirmed, and pays each lease only once', () => {
    const a = lease(1)
    const b = lease(2)
    voucher(a, 1n, 100n)
    voucher(b, 1n, 40n)
    const batch = ledger.recordOnchainBatch([{ leaseId: a, sequence: 1n, cumulativeAmount: 100n }, { leaseId: b, sequence: 1n, cumulativeAmount: 40n }])
    expect(batch).toMatchObject({ kind: 'onchain', state: 'pending', total: 140n, txHash: null })
    expect(batch.entries.map((e) => [e.leaseId, e.paidAmount, e.code])).toEqual([[a, null, null], [b, null, null]])
    // in flight: not offered again
    expect(ledger.unsettledVouchers({ kind: 'onchain' })).toEqual([])
    expect(ledger.unfinishedSettlements().map((s) => s.id)).toEqual([batch.id])

    expect(ledger.markSettlementSubmitted(batch.id, '0xfeed')).toMatchObject({ state: 'submitted', txHash: '0xfeed' })
    const confirmed = ledger.confirmSettlement(batch.id, {
      txHash: '0xfeed', blockNumber: 7, gasUsed: 123_456n,
      entries: [{ leaseId: a, paidAmount: 100n, code: 'PAID', redeemedTotal: 100n }, { leaseId: b, paidAmount: 30n, code: 'CAPPED', redeemedTotal: 30n }]
    })
    expect(confirmed).toMatchObject({ state: 'confirmed', blockNumber: 7, gasUsed: 123_456n })
    expect(confirmed.entries.map((e) => [e.paidAmount, e.code])).toEqual([[100n, 'PAID'], [30n, 'CAPPED']])
    expect(ledger.unfinishedSettlements()).toEqual([])
    // a is settled; b still has 10 unredeemed
    expect(ledger.unsettledVouchers({ kind: 'onchain' }).map((u) => [u.lease.leaseId, u.unsettled])).toEqual([[b, 10n]])
    expect(ledger.leaseSettlement(a)).toMatchObject({ kind: 'onchain', vouchered: 100n, redeemed: 100n, outstanding: 0n, lastTxHash: '0xfeed', lastSettlementState: 'confirmed', voucherSequence: 1n })
    clock.advance(1000)
    voucher(a, 2n, 160n)
    expect(ledger.unsettledVouchers({ kind: 'onchain' }).map((u) => [u.lease.leaseId, u.settled, u.unsettled])).toEqual([[b, 30n, 10n], [a, 100n, 60n]])
    expect(() => ledger.markSettlementSubmitted(batch.id, '0x1')).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
  })

  it('a failed batch pays nothing, and the chain figure replaces the recorded one', () => {
    const a = lease(1)
    voucher(a, 1n, 100n)
    const batch = ledger.recordOnchainBatch([{ leaseId: a, sequence: 1n, cumulativeAmount: 100n }])
    const failed = ledger.failSettlement(batch.id, 'the node rejected it')
    expect(failed).toMatchObject({ state: 'failed', error: 'the node rejected it' })
    expect(failed.entries[0]).toMatchObject({ paidAmount: 0n, code: 'FAILED' })
    expect(ledger.unsettledVouchers({ kind: 'onchain' }).map((u) => u.unsettled)).toEqual([100n])
    ledger.recordChainPaid([{ leaseId: a, redeemed: 100n }], '0xbeef')
    expect(ledger.unsettledVouchers({ kind: 'onchain' })).toEqual([])
    expect(ledger.leaseSettlement(a)).toMatchObject({ redeemed: 100n, lastTxHash: '0xbeef' })
  })

  it('writes a batch and its entries in one transaction: a bad entry leaves nothing', () => {
    const a = lease(1)
    expect(() => ledger.recordOnchainBatch([{ leaseId: a, sequence: 1n, cumulativeAmount: 1n }, { leaseId: '0xnope', sequence: 1n, cumulativeAmount: 1n }]))
      .toThrow(expect.objectContaining({ name: 'NotFoundError' }))
    expect(() => ledger.recordOnchainBatch([])).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
    expect(ledger.listSettlements()).toEqual([])
  })
})

describe('off-chain exports', () => {
  it('records the export and marks its leases exported at once', () => {
    const a = lease(1, ZERO_ADDRESS)
    voucher(a, 1n, 100n)
    const exported = ledger.recordOffchainExport([{ leaseId: a, sequence: 1n, cumulativeAmount: 100n }], '{"entries":[]}')
    expect(exported).toMatchObject({ kind: 'offchain', state: 'exported', total: 100n })
    expect(exported.entries[0]).toMatchObject({ paidAmount: 100n, code: 'EXPORTED' })
    expect(ledger.unsettledVouchers({ kind: 'offchain' })).toEqual([])
    voucher(a, 2n, 130n)
    expect(ledger.unsettledVouchers({ kind: 'offchain' }).map((u) => [u.settled, u.unsettled])).toEqual([[100n, 30n]])
    const second = ledger.recordOffchainExport([{ leaseId: a, sequence: 2n, cumulativeAmount: 130n }], '{}')
    expect(second).toMatchObject({ total: 30n })
    expect(ledger.leaseSettlement(a)).toMatchObject({ kind: 'offchain', exported: 130n, redeemed: 0n, outstanding: 0n })
  })
})

describe('earnings', () => {
  it('sums accrued, vouchered, exported, redeemed and outstanding per token and renter', () => {
    const a = lease(1) // on-chain, default renter
    const b = lease(2, ESCROW, OTHER_RENTER)
    const c = lease(3, ZERO_ADDRESS)
    period(a, 0, 100n, 0n)
    period(a, 1, 200n, 100n)
    voucher(a, 1n, 100n)
    voucher(a, 2n, 200n)
    period(b, 0, 50n, 0n) // metered, no voucher yet
    period(c, 0, 80n, 0n)
    voucher(c, 1n, 80n)
    const batch = ledger.recordOnchainBatch([{ leaseId: a, sequence: 2n, cumulativeAmount: 200n }])
    ledger.confirmSettlement(batch.id, { txHash: '0x1', blockNumber: 1, gasUsed: 1n, entries: [{ leaseId: a, paidAmount: 150n, code: 'CAPPED', redeemedTotal: 150n }] })
    ledger.recordOffchainExport([{ leaseId: c, sequence: 1n, cumulativeAmount: 80n }], '{}')

    const [token, ...others] = ledger.earnings()
    expect(others).toEqual([])
    expect(token).toMatchObject({ chainId: 31337n, token: leaseInput(1).token, accrued: 330n, vouchered: 280n, exported: 80n, redeemed: 150n, outstanding: 100n, unvouchered: 50n, leases: 3 })
    expect(token?.renters.map((r) => [r.renter, r.outstanding, r.unvouchered])).toEqual([[leaseInput(1).renter, 50n, 0n], [OTHER_RENTER, 50n, 50n]])
    expect(ledger.earnings({ since: clock.now() + 1 })).toEqual([])
  })
})

describe('renter exposure', () => {
  it('sums what one renter owes at one escrow and token and was not redeemed, in-flight batches included', () => {
    const a = lease(1)
    const b = lease(2)
    lease(3, ESCROW, OTHER_RENTER)
    lease(4, ZERO_ADDRESS)
    period(a, 0, 100n, 0n)
    voucher(a, 1n, 100n)
    period(a, 1, 180n, 100n) // metered, not yet vouchered
    period(b, 0, 50n, 0n)
    voucher(b, 1n, 50n)
    const batch = ledger.recordOnchainBatch([{ leaseId: a, sequence: 1n, cumulativeAmount: 100n }])
    const input = leaseInput(1)
    const exposure = () => ledger.renterExposure({ escrow: ESCROW, renter: input.renter, token: input.token })
    expect(exposure()).toEqual({ unredeemedVouchered: 150n, unredeemedOwed: 230n, leases: 2 })
    ledger.confirmSettlement(batch.id, { txHash: '0x2', blockNumber: 2, gasUsed: 1n, entries: [{ leaseId: a, paidAmount: 100n, code: 'PAID', redeemedTotal: 100n }] })
    expect(exposure()).toEqual({ unredeemedVouchered: 50n, unredeemedOwed: 130n, leases: 2 })
  })

  it('counts leases by state, GPU-milliseconds, vouchers and settlement batches by kind and state for monitoring', () => {
    expect(ledger.activityCounts()).toEqual({ leasesByState: {}, gpuMs: 0n, vouchers: 0, settlements: [] })
    const a = lease(1)
    const b = lease(2)
    ledger.reserveLease(leaseInput(3))
    period(a, 0, 100n, 0n)
    period(a, 1, 200n, 100n)
    period(b, 0, 50n, 0n)
    voucher(a, 1n, 100n)
    voucher(a, 2n, 200n)
    voucher(b, 1n, 50n)
    const batch = ledger.recordOnchainBatch([{ leaseId: a, sequence: 2n, cumulativeAmount: 200n }])
    ledger.markSettlementSubmitted(batch.id, '0x1')
    ledger.recordOnchainBatch([{ leaseId: b, sequence: 1n, cumulativeAmount: 50n }])
    ledger.transitionLease(b, 'completed', 'job exited 0')
    expect(ledger.activityCounts()).toEqual({
      leasesByState: { accepted: 1, running: 1, completed: 1 },
      gpuMs: 180_000n,
      vouchers: 3,
      settlements: [{ kind: 'onchain', state: 'pending', count: 1 }, { kind: 'onchain', state: 'submitted', count: 1 }]
    })
  })
})
