import { readFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import type { Ledger, LedgerLogger, UsagePeriodInput, UsageSample } from '@gpumesh/ledger'
import { caught, closeTestLedger, gpuUuid, leaseInput, openTestLedger } from './helpers.js'
import type { FakeClock, TempDir } from './helpers.js'

let dir: TempDir
let clock: FakeClock
let ledger: Ledger
let path: string
const id = leaseInput(1).leaseId

beforeEach(() => {
  ;({ dir, clock, path, ledger } = openTestLedger())
  ledger.reserveLease(leaseInput(1, { gpuCount: 2 }))
})
afterEach(() => { closeTestLedger({ dir, ledger }) })

function period (index: number, start: number, end: number, amount: bigint, cumulative: bigint, final = false): UsagePeriodInput {
  return {
    leaseId: id,
    periodIndex: index,
    startOffsetMs: start,
    endOffsetMs: end,
    gpuMs: BigInt(2 * (end - start)),
    amount,
    cumulativeAmount: cumulative,
    avgUtilizationBp: 9750,
    peakMemoryMiB: 40000,
    energyMj: 123_456_789n,
    final,
    report: JSON.stringify({ periodIndex: index }),
  }
}

describe('usage samples', () => {
  it('appends a batch in one transaction and reads it back by period', () => {
    ledger.transitionLease(id, 'running', 'job started')
    const batch = (offsetMs: number): Parameters<Ledger['appendUsageSamples']>[0] => [0, 1].map((g) => ({
      leaseId: id, offsetMs, at: clock.now() + offsetMs, gpuUuid: gpuUuid(g), utilizationPercent: 97.5, memoryUsedMiB: 40000, powerW: 612.25
    }))
    ledger.appendUsageSamples(batch(0))
    ledger.appendUsageSamples(batch(1000))
    ledger.appendUsageSamples(batch(2000))
    expect(ledger.lastSample(id)).toMatchObject({ offsetMs: 2000, gpuUuid: gpuUuid(1), powerW: 612.25 })
    expect(ledger.samplesForPeriod(id, 0, 2000).map((s) => s.offsetMs)).toEqual([0, 0, 1000, 1000])
    // A bad row fails the whole batch.
    const bad = [...batch(3000), { ...batch(3000)[0]!, leaseId: '0xnope' }]
    expect(caught(() => { ledger.appendUsageSamples(bad) })).toMatchObject({ name: 'LedgerError', sqliteCode: 'SQLITE_CONSTRAINT_FOREIGNKEY' })
    expect(ledger.lastSample(id)?.offsetMs).toBe(2000)
  })
})

/** Commits in the WAL file so far (frames of the current WAL generation that end a transaction). */
function walCommits (dbPath: string): number {
  const wal = readFileSync(`${dbPath}-wal`)
  const pageSize = wal.readUInt32BE(8)
  const salt = [wal.readUInt32BE(16), wal.readUInt32BE(20)]
  let commits = 0
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (wal.readUInt32BE(at + 8) !== salt[0] || wal.readUInt32BE(at + 12) !== salt[1]) break
    if (wal.readUInt32BE(at + 4) !== 0) commits++
  }
  return commits
}

function storedSamples (dbPath: string): number {
  const db = new Database(dbPath, { readonly: true })
  try {
    return (db.prepare('SELECT count(*) AS n FROM usage_samples').get() as { n: number }).n
  } finally {
    db.close()
  }
}

async function endOfTurn (): Promise<void> {
  await new Promise<void>((resolve) => { setImmediate(resolve) })
}

describe('queued usage samples', () => {
  const leases = [1, 2, 3].map((n) => leaseInput(n, { gpuCount: 2 }).leaseId)
  const tick = (leaseId: string, offsetMs: number): UsageSample[] => [0, 1].map((g) => ({
    leaseId, offsetMs, at: clock.now() + offsetMs, gpuUuid: gpuUuid(g), utilizationPercent: 90, memoryUsedMiB: 1000, powerW: 300
  }))
  beforeEach(() => {
    ledger.reserveLease(leaseInput(2, { gpuCount: 2 }))
    ledger.reserveLease(leaseInput(3, { gpuCount: 2 }))
    for (const leaseId of leases) ledger.transitionLease(leaseId, 'running', 'job started')
  })

  it('every lease sampling in one turn shares one transaction, written when the turn ends', async () => {
    const before = walCommits(path)
    for (const leaseId of leases) ledger.queueUsageSamples(tick(leaseId, 0))
    expect(storedSamples(path)).toBe(0)
    expect(walCommits(path)).toBe(before)
    await endOfTurn()
    expect(storedSamples(path)).toBe(6)
    expect(walCommits(path)).toBe(before + 1)
    // The same samples appended one lease at a time: one transaction each.
    for (const leaseId of leases) ledger.appendUsageSamples(tick(leaseId, 1000))
    expect(walCommits(path)).toBe(before + 1 + leases.length)
    expect(ledger.samplesForPeriod(leases[2]!, 0, 2000).map((x) => x.offsetMs)).toEqual([0, 0, 1000, 1000])
  })

  it('reads, period appends and close write the queue first', () => {
    ledger.queueUsageSamples(tick(leases[0]!, 0))
    expect(ledger.lastSample(leases[0]!)?.offsetMs).toBe(0)
    ledger.queueUsageSamples(tick(leases[0]!, 1000))
    expect(ledger.samplesForPeriod(leases[0]!, 0, 2000)).toHaveLength(4)
    ledger.queueUsageSamples(tick(leases[0]!, 2000))
    ledger.appendUsagePeriod({ ...period(0, 0, 3000, 5n, 5n), leaseId: leases[0]! })
    expect(storedSamples(path)).toBe(6)
    ledger.queueUsageSamples(tick(leases[1]!, 0))
    ledger.close()
    expect(storedSamples(path)).toBe(8)
    expect(caught(() => { ledger.queueUsageSamples(tick(leases[1]!, 1000)) })).toMatchObject({ name: 'LedgerClosedError' })
  })

  it('one lease\'s bad sample costs no other lease its samples; it is logged and dropped', async () => {
    ledger.close()
    const warnings: Array<{ obj: object, msg?: string }> = []
    const logger: LedgerLogger = { debug: () => {}, info: () => {}, warn: (obj, msg) => { warnings.push({ obj, ...(msg === undefined ? {} : { msg }) }) }, error: () => {} }
    ledger = openLedger(path, { clock, logger })
    ledger.queueUsageSamples(tick(leases[0]!, 0))
    ledger.queueUsageSamples([{ ...tick(leases[1]!, 0)[0]!, leaseId: '0xnope' }])
    ledger.queueUsageSamples(tick(leases[2]!, 0))
    await endOfTurn()
    expect(ledger.samplesForPeriod(leases[0]!, 0, 1000)).toHaveLength(2)
    expect(ledger.samplesForPeriod(leases[2]!, 0, 1000)).toHaveLength(2)
    expect(storedSamples(path)).toBe(4)
    expect(warnings).toEqual([{ obj: expect.objectContaining({ leaseId: '0xnope', count: 1 }), msg: 'usage samples not written' }])
  })
})

describe('queued usage periods', () => {
  const leases = [1, 2, 3].map((n) => leaseInput(n, { gpuCount: 2 }).leaseId)
  const sample = (leaseId: string, offsetMs: number): UsageSample => ({
    leaseId, offsetMs, at: clock.now() + offsetMs, gpuUuid: gpuUuid(0), utilizationPercent: 90, memoryUsedMiB: 1000, powerW: 300
  })
  /** Queues a period and records what it is told, in order. */
  function queue (input: UsagePeriodInput, told: string[]): void {
    ledger.queueUsagePeriod(input, {
      written: (record) => { told.push(`${record.leaseId.slice(-1)}/${record.periodIndex} written`) },
      failed: (err) => { told.push(`${input.leaseId.slice(-1)}/${input.periodIndex} ${err.name}${'reason' in err ? ` ${String(err.reason)}` : ''}`) }
    })
  }
  const first = (leaseId: string): UsagePeriodInput => ({ ...period(0, 0, 1000, 5n, 5n), leaseId })
  beforeEach(() => {
    ledger.reserveLease(leaseInput(2, { gpuCount: 2 }))
    ledger.reserveLease(leaseInput(3, { gpuCount: 2 }))
    for (const leaseId of leases) ledger.transitionLease(leaseId, 'running', 'job started')
  })

  it('every period and sample queued in one turn is one fsync\'d commit; each caller hears after it, in order', async () => {
    const before = walCommits(path)
    const told: string[] = []
    for (const leaseId of leases) {
      ledger.queueUsageSamples([sample(leaseId, 0)])
      queue(first(leaseId), told)
    }
    expect(ledger.isOpen).toBe(true)
    expect(told).toEqual([])
    expect(walCommits(path)).toBe(before)
    await endOfTurn()
    expect(walCommits(path)).toBe(before + 1)
    expect(told).toEqual(leases.map((l) => `${l.slice(-1)}/0 written`))
    expect(storedSamples(path)).toBe(3)
    for (const leaseId of leases) expect(ledger.lastUsagePeriod(leaseId)).toMatchObject({ periodIndex: 0, endOffsetMs: 1000, cumulativeAmount: 5n })
  })

  it('a refused period writes nothing of itself and costs no other period or sample its place', async () => {
    const told: string[] = []
    queue(first(leases[0]!), told)
    queue({ ...period(1, 0, 1000, 5n, 5n), leaseId: leases[1]! }, told) // index 1 before 0
    queue({ ...first(leases[2]!), cumulativeAmount: 6n }, told)
    queue({ ...first(leases[1]!), leaseId: '0xnope' }, told)
    ledger.queueUsageSamples([sample(leases[1]!, 0)])
    queue({ ...period(1, 1000, 2000, 5n, 10n), leaseId: leases[0]! }, told) // follows one queued before it
    await endOfTurn()
    expect(told).toEqual([
      `${leases[0]!.slice(-1)}/0 written`,
      `${leases[1]!.slice(-1)}/1 UsagePeriodOrderError INDEX_GAP`,
      `${leases[2]!.slice(-1)}/0 UsagePeriodOrderError CUMULATIVE_MISMATCH`,
      'e/0 NotFoundError',
      `${leases[0]!.slice(-1)}/1 written`
    ])
    expect(ledger.usagePeriods(leases[0]!).map((p) => p.endOffsetMs)).toEqual([1000, 2000])
    expect(ledger.usagePeriods(leases[1]!)).toEqual([])
    expect(ledger.usagePeriods(leases[2]!)).toEqual([])
    expect(storedSamples(path)).toBe(1)
  })

  it('reads, a period appended at once and close write the queue first', () => {
    const told: string[] = []
    queue(first(leases[0]!), told)
    expect(ledger.lastUsagePeriod(leases[0]!)?.periodIndex).toBe(0)
    expect(told).toEqual([`${leases[0]!.slice(-1)}/0 written`])
    queue({ ...period(1, 1000, 2000, 5n, 10n), leaseId: leases[0]! }, told)
    expect(ledger.usagePeriods(leases[0]!)).toHaveLength(2)
    queue({ ...period(2, 2000, 3000, 5n, 15n), leaseId: leases[0]! }, told)
    // The final period, appended at once, follows the one still queued.
    ledger.appendUsagePeriod({ ...period(3, 3000, 3500, 2n, 17n, true), leaseId: leases[0]! })
    expect(told).toHaveLength(3)
    queue(first(leases[1]!), told)
    ledger.close()
    expect(told).toHaveLength(4)
    const reopened = openLedger(path, { clock })
    try {
      expect(reopened.usagePeriods(leases[0]!).map((p) => p.periodIndex)).toEqual([0, 1, 2, 3])
      expect(reopened.lastUsagePeriod(leases[1]!)?.periodIndex).toBe(0)
    } finally {
      reopened.close()
    }
    expect(caught(() => { queue(first(leases[2]!), told) })).toMatchObject({ name: 'LedgerClosedError' })
  })

  it('a caller that throws is logged and the others still hear', async () => {
    ledger.close()
    const warnings: string[] = []
    const logger: LedgerLogger = { debug: () => {}, info: () => {}, warn: (_obj, msg) => { warnings.push(msg ?? '') }, error: () => {} }
    ledger = openLedger(path, { clock, logger })
    const told: string[] = []
    ledger.queueUsagePeriod(first(leases[0]!), { written: () => { throw new Error('boom') }, failed: () => {} })
    queue(first(leases[1]!), told)
    await endOfTurn()
    expect(told).toEqual([`${leases[1]!.slice(-1)}/0 written`])
    expect(warnings).toEqual(['usage period callback threw'])
    expect(ledger.lastUsagePeriod(leases[0]!)?.periodIndex).toBe(0)
  })

  it('when the whole transaction fails (the database is locked), each period is refused on its own and nothing is written', async () => {
    ledger.close()
    ledger = openLedger(path, { clock, busyTimeoutMs: 20 })
    const other = new Database(path)
    const told: string[] = []
    try {
      other.prepare('BEGIN IMMEDIATE').run()
      queue(first(leases[0]!), told)
      queue(first(leases[1]!), told)
      ledger.queueUsageSamples([sample(leases[2]!, 0)])
      await endOfTurn()
    } finally {
      other.prepare('ROLLBACK').run()
      other.close()
    }
    expect(told).toEqual(leases.slice(0, 2).map((l) => `${l.slice(-1)}/0 LedgerBusyError`))
    expect(ledger.usagePeriods(leases[0]!)).toEqual([])
    expect(storedSamples(path)).toBe(0)
    // Nothing is left queued: the next turn writes only what it queues.
    queue(first(leases[0]!), told)
    await endOfTurn()
    expect(told.at(-1)).toBe(`${leases[0]!.slice(-1)}/0 written`)
  })
})

describe('usage periods', () => {
  it('are refused before the job runs', () => {
    expect(caught(() => ledger.appendUsagePeriod(period(0, 0, 60_000, 10n, 10n)))).toMatchObject({
      name: 'UsagePeriodOrderError', code: 'USAGE_PERIOD_ORDER', reason: 'LEASE_NOT_METERED'
    })
  })

  it('must tile the lease: next index, start at the last end, cumulative = last + amount, nothing after final', () => {
    ledger.transitionLease(id, 'running', 'job started')
    expect(caught(() => ledger.appendUsagePeriod(period(0, 5, 60_000, 10n, 10n)))).toMatchObject({ reason: 'NOT_CONTIGUOUS' })
    ledger.appendUsagePeriod(period(0, 0, 60_000, 10n, 10n))
    expect(caught(() => ledger.appendUsagePeriod(period(2, 60_000, 120_000, 10n, 20n)))).toMatchObject({ reason: 'INDEX_GAP' })
    expect(caught(() => ledger.appendUsagePeriod(period(0, 0, 60_000, 10n, 10n)))).toMatchObject({ reason: 'INDEX_GAP' })
    expect(caught(() => ledger.appendUsagePeriod(period(1, 59_000, 120_000, 10n, 20n)))).toMatchObject({ reason: 'NOT_CONTIGUOUS' })
    expect(caught(() => ledger.appendUsagePeriod(period(1, 60_000, 60_000, 0n, 10n)))).toMatchObject({ reason: 'EMPTY_PERIOD' })
    expect(caught(() => ledger.appendUsagePeriod(period(1, 60_000, 120_000, 10n, 21n)))).toMatchObject({ reason: 'CUMULATIVE_MISMATCH' })
    ledger.appendUsagePeriod(period(1, 60_000, 120_000, 10n, 20n))
    ledger.transitionLease(id, 'completed', 'exit 0')
    ledger.appendUsagePeriod(period(2, 120_000, 125_000, 1n, 21n, true))
    expect(caught(() => ledger.appendUsagePeriod(period(3, 125_000, 126_000, 1n, 22n)))).toMatchObject({ reason: 'AFTER_FINAL' })
    const periods = ledger.usagePeriods(id)
    expect(periods.map((p) => [p.periodIndex, p.startOffsetMs, p.endOffsetMs, p.cumulativeAmount])).toEqual([
      [0, 0, 60_000, 10n], [1, 60_000, 120_000, 20n], [2, 120_000, 125_000, 21n]
    ])
    expect(ledger.lastUsagePeriod(id)).toMatchObject({ periodIndex: 2, final: true, energyMj: 123_456_789n, gpuMs: 10_000n })
  })

  it('the database itself refuses a gap or an overlap', () => {
    ledger.transitionLease(id, 'running', 'job started')
    ledger.appendUsagePeriod(period(0, 0, 60_000, 10n, 10n))
    const db = new Database(path)
    try {
      const insert = db.prepare(`INSERT INTO usage_periods (lease_id, period_index, start_offset_ms, end_offset_ms, gpu_ms, amount,
        cumulative_amount, final, report, created_at) VALUES (?, ?, ?, ?, '1', '1', '11', 0, '{}', 0)`)
      expect(() => insert.run(id, 1, 30_000, 90_000)).toThrow(/contiguous/)
      expect(() => insert.run(id, 2, 60_000, 90_000)).toThrow(/contiguous/)
      expect(() => db.prepare("UPDATE usage_periods SET amount = '0'").run()).toThrow(/append-only/)
      // Money columns hold canonical decimals only: no REAL, no sign, no leading zero.
      const settle = db.prepare("INSERT INTO settlements (kind, created_at, updated_at, lease_ids, total, state) VALUES ('offchain', 0, 0, '[]', ?, 'pending')")
      for (const bad of [1.5, '-1', '01', '1e3', '']) expect(() => settle.run(bad)).toThrow(/CHECK constraint failed/)
      expect(() => settle.run('340282366920938463463374607431768211456')).not.toThrow()
    } finally {
      db.close()
    }
  })
})

describe('money', () => {
  it('round-trips amounts far above 2^64 exactly as bigint', () => {
    const huge = 2n ** 200n + 12345n
    ledger.transitionLease(id, 'running', 'job started')
    ledger.appendUsagePeriod({ ...period(0, 0, 60_000, huge, huge), gpuMs: 2n ** 70n, energyMj: 2n ** 65n })
    expect(ledger.lastUsagePeriod(id)).toMatchObject({ amount: huge, cumulativeAmount: huge, gpuMs: 2n ** 70n, energyMj: 2n ** 65n })
    ledger.recordVoucher({ leaseId: id, sequence: 2n ** 64n - 1n, cumulativeAmount: huge, signature: '0xsig', body: '{}' })
    expect(ledger.latestVoucher(id)).toMatchObject({ sequence: 2n ** 64n - 1n, cumulativeAmount: huge })
    const settlement = ledger.recordSettlement({ kind: 'onchain', leaseIds: [id], total: huge * 3n, txHash: null, batch: '{"n":1}', state: 'pending' })
    expect(ledger.listSettlements()).toEqual([settlement])
    expect(settlement.total).toBe(huge * 3n)
    expect(ledger.updateSettlement(settlement.id, 'confirmed', '0xabc')).toMatchObject({ state: 'confirmed', txHash: '0xabc' })
    expect(ledger.getLease(id)?.pricePerGpuHour).toBe(2_000_000n)
  })

  it('refuses negative money and non-bigint values', () => {
    expect(caught(() => ledger.recordSettlement({ kind: 'offchain', leaseIds: [], total: -1n, txHash: null, batch: null, state: 'pending' })))
      .toMatchObject({ name: 'InvalidInputError', field: 'total' })
    expect(caught(() => ledger.recordSettlement({ kind: 'offchain', leaseIds: [], total: 1.5 as unknown as bigint, txHash: null, batch: null, state: 'pending' })))
      .toMatchObject({ name: 'InvalidInputError', field: 'total' })
  })
})

describe('vouchers', () => {
  const voucher = (sequence: bigint, cumulativeAmount: bigint, signature = `0x${sequence}`): Parameters<Ledger['recordVoucher']>[0] =>
    ({ leaseId: id, sequence, cumulativeAmount, signature, body: JSON.stringify({ sequence: String(sequence) }) })

  it('must increase in sequence and never decrease in amount', () => {
    expect(ledger.latestVoucher(id)).toBeNull()
    expect(ledger.recordVoucher(voucher(1n, 100n))).toBe(true)
    expect(ledger.recordVoucher(voucher(9n, 100n))).toBe(true)
    expect(ledger.recordVoucher(voucher(9n, 100n))).toBe(false)
    expect(caught(() => ledger.recordVoucher(voucher(9n, 200n, '0xother')))).toMatchObject({ name: 'VoucherOrderError', reason: 'SEQUENCE_NOT_INCREASING' })
    expect(caught(() => ledger.recordVoucher(voucher(3n, 300n)))).toMatchObject({ reason: 'SEQUENCE_NOT_INCREASING' })
    expect(caught(() => ledger.recordVoucher(voucher(10n, 99n)))).toMatchObject({ name: 'VoucherOrderError', reason: 'CUMULATIVE_DECREASING' })
    expect(ledger.recordVoucher(voucher(10n, 150n))).toBe(true)
    // Text order would put 10 before 9; stored sequences are padded so it does not.
    expect(ledger.latestVoucher(id)).toMatchObject({ sequence: 10n, cumulativeAmount: 150n, receivedAt: clock.now() })
    expect(ledger.vouchers(id).map((v) => v.sequence)).toEqual([1n, 9n, 10n])
    expect(caught(() => ledger.recordVoucher(voucher(2n ** 64n, 1000n)))).toMatchObject({ name: 'InvalidInputError', field: 'sequence' })
    expect(caught(() => ledger.recordVoucher({ ...voucher(11n, 1000n), leaseId: '0xnone' }))).toMatchObject({ name: 'NotFoundError' })
  })
})

describe('offers and kv', () => {
  it('keeps the newest offer and small daemon state', () => {
    expect(ledger.latestOffer()).toBeNull()
    ledger.recordOffer({ sequence: 1, publishedAt: 1, expiresAt: 2, body: '{"a":1}', gpusFree: 8 })
    ledger.recordOffer({ sequence: 2, publishedAt: 3, expiresAt: 4, body: '{"a":2}', gpusFree: 6 })
    expect(ledger.latestOffer()).toEqual({ sequence: 2, publishedAt: 3, expiresAt: 4, body: '{"a":2}', gpusFree: 6 })
    ledger.setKv('offer.sequence', '2')
    ledger.setKv('offer.sequence', '3')
    expect(ledger.getKv('offer.sequence')).toBe('3')
    expect(ledger.getKv('missing')).toBeNull()
  })
})
