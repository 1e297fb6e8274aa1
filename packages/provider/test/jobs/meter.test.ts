import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ZERO_ADDRESS, cumulativeAmount, verifyUsageReport, signVoucher, type Clock, type SignedUsageReport, type Voucher } from '@gpumesh/protocol'
import { openLedger } from '@gpumesh/ledger'
import { LeaseMeter, simulatedGpuSampler } from '../../src/jobs/index.js'
import { CHAIN_ID, PROVIDER, PROVIDER_KEY, RENTER, RENTER_KEY, TOKEN, makeLease, testLedger, type TestLedger } from './helpers.js'
import { acceptVoucher } from '../../src/jobs/voucher.js'

describe('LeaseMeter (fake timers, injected clock)', () => {
  let t: TestLedger
  let t0: number
  const clock: Clock = { now: () => Date.now(), monotonicNow: () => Date.now() - t0 }

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 })
    t0 = Date.now()
    t = testLedger()
  })
  afterEach(() => {
    t.cleanup()
    vi.useRealTimers()
  })

  function meter (leaseId: string, overrides: { onUnpaid?: () => void, onDurationReached?: () => void } = {}): { m: LeaseMeter, reports: SignedUsageReport[] } {
    const lease = t.ledger.getLease(leaseId)
    if (lease === null) throw new Error('no lease')
    const reports: SignedUsageReport[] = []
    const m = new LeaseMeter({ ledger: t.ledger, clock, sampleGpus: simulatedGpuSampler() }, lease, {
      paymentKey: PROVIDER_KEY,
      onReport: (r) => { reports.push(r) },
      onUnpaid: overrides.onUnpaid ?? (() => {}),
      ...(overrides.onDurationReached !== undefined ? { onDurationReached: overrides.onDurationReached } : {})
    })
    return { m, reports }
  }

  it('closes periods that tile the lease exactly, bounded by its duration, with signed reports', async () => {
    const leaseId = makeLease(t.ledger, { running: true, durationSec: 10, billingIntervalSec: 3, paymentGraceSec: 100 })
    let durationReached = 0
    const { m, reports } = meter(leaseId, { onDurationReached: () => { durationReached++ } })
    m.start()
    await vi.advanceTimersByTimeAsync(12_500)
    expect(durationReached).toBe(1)
    const final = m.closeFinal()
    m.stop()
    expect(final?.report.final).toBe(true)
    const periods = t.ledger.usagePeriods(leaseId)
    expect(periods.map((p) => [p.startOffsetMs, p.endOffsetMs])).toEqual([[0, 3000], [3000, 6000], [6000, 9000], [9000, 10_000]])
    expect(periods.at(-1)?.final).toBe(true)
    expect(periods.map((p) => p.gpuMs)).toEqual([6000n, 6000n, 6000n, 2000n])
    for (const r of reports) {
      expect(verifyUsageReport(r, { chainId: CHAIN_ID, verifyingContract: ZERO_ADDRESS })).toBe(PROVIDER)
      expect(r.report.avgUtilizationBp).toBeGreaterThan(8000)
      expect(r.report.peakMemoryMiB).toBeGreaterThan(39_000)
      expect(r.report.energyMilliJoules).toBeGreaterThan(0n)
    }
    expect(reports.map((r) => r.report.periodIndex)).toEqual([0, 1, 2, 3])
    // Samples were written to the ledger as they were taken.
    expect(t.ledger.samplesForPeriod(leaseId, 0, 10_000)).toHaveLength(8) // offsets 0, 3, 6, 9 s × 2 GPUs
  })

  it('rounds once on the cumulative figure, never per period', async () => {
    // 1 base unit per GPU-hour, 1 GPU, 1 s periods: each period alone is worth 0.000277… units.
    const leaseId = makeLease(t.ledger, { running: true, gpuCount: 1, pricePerGpuHour: 7_777n, billingIntervalSec: 1, paymentGraceSec: 3600 })
    const { m, reports } = meter(leaseId)
    m.start()
    await vi.advanceTimersByTimeAsync(5_000)
    await vi.advanceTimersByTimeAsync(400)
    m.closeFinal()
    const last = reports.at(-1)?.report
    expect(last?.endOffsetMs).toBe(5400)
    expect(last?.cumulativeAmount).toBe(cumulativeAmount(7_777n, 5400n))
    expect(reports.reduce((sum, r) => sum + r.report.amount, 0n)).toBe(cumulativeAmount(7_777n, 5400n))
    expect(reports.map((r) => r.report.amount)).toEqual([2n, 2n, 2n, 2n, 2n, 1n])
    // floor per period would have billed 2 × 5 + 0 = 10 ≠ 11
    expect(cumulativeAmount(7_777n, 5400n)).toBe(11n)
  })

  it('stops a lease that is not paid within one interval plus the grace', async () => {
    const leaseId = makeLease(t.ledger, { running: true, billingIntervalSec: 1, paymentGraceSec: 1 })
    let unpaidAt: number | null = null
    const { m } = meter(leaseId, { onUnpaid: () => { unpaidAt = clock.monotonicNow() } })
    m.start()
    await vi.advanceTimersByTimeAsync(1_999)
    expect(unpaidAt).toBeNull()
    await vi.advanceTimersByTimeAsync(1)
    expect(unpaidAt).toBe(2000) // first report at 1 s, grace 1 s
    m.stop()
  })

  it('keeps running while vouchers arrive in time', async () => {
    const leaseId = makeLease(t.ledger, { running: true, billingIntervalSec: 1, paymentGraceSec: 1 })
    let unpaid = false
    const lease = t.ledger.getLease(leaseId)
    if (lease === null) throw new Error('no lease')
    let sequence = 0n
    const m = new LeaseMeter({ ledger: t.ledger, clock, sampleGpus: simulatedGpuSampler() }, lease, {
      paymentKey: PROVIDER_KEY,
      onReport: (r) => {
        const fields = { leaseId, provider: PROVIDER, renter: RENTER, token: TOKEN, cumulativeAmount: r.report.cumulativeAmount, sequence: ++sequence }
        const voucher: Voucher = { type: 'voucher', ...fields, chainId: CHAIN_ID, verifyingContract: ZERO_ADDRESS, signature: signVoucher(fields, RENTER_KEY, { chainId: CHAIN_ID, verifyingContract: ZERO_ADDRESS }) }
        const accepted = acceptVoucher(t.ledger, voucher)
        queueMicrotask(() => { m.paid(accepted.cumulativeAmount) })
      },
      onUnpaid: () => { unpaid = true }
    })
    m.start()
    await vi.advanceTimersByTimeAsync(10_000)
    // The period that closed at 10 s is written, and its report sent, when that turn ends.
    await vi.advanceTimersToNextTimerAsync()
    expect(unpaid).toBe(false)
    expect(t.ledger.vouchers(leaseId)).toHaveLength(10)
    m.stop()
  })

  it('sends a report only once its period is committed; meters ticking in one turn share the commit', async () => {
    const leaseIds = ['a', 'b'].map((name) => makeLease(t.ledger, { name, running: true, gpuCount: 1, billingIntervalSec: 1, paymentGraceSec: 100 }))
    // A second connection to the file sees what is committed, not what this one has queued.
    const committed = openLedger(t.ledger.path)
    const seen: Array<{ leaseId: string, index: number, inFile: boolean }> = []
    try {
      const meters = leaseIds.map((leaseId) => {
        const lease = t.ledger.getLease(leaseId)
        if (lease === null) throw new Error('no lease')
        return new LeaseMeter({ ledger: t.ledger, clock, sampleGpus: simulatedGpuSampler() }, lease, {
          paymentKey: PROVIDER_KEY,
          onReport: (r) => { seen.push({ leaseId, index: r.report.periodIndex, inFile: committed.lastUsagePeriod(leaseId)?.periodIndex === r.report.periodIndex }) },
          onUnpaid: () => {}
        })
      })
      for (const m of meters) m.start()
      await vi.advanceTimersByTimeAsync(1_000)
      expect(seen).toEqual([]) // closed and signed, not yet written
      await vi.advanceTimersToNextTimerAsync()
      expect(seen).toEqual(leaseIds.map((leaseId) => ({ leaseId, index: 0, inFile: true })))
      for (const m of meters) m.stop()
    } finally {
      committed.close()
    }
  })

  it('a period the ledger refuses is not reported; the meter goes on from what the ledger holds', async () => {
    const leaseId = makeLease(t.ledger, { running: true, gpuCount: 1, billingIntervalSec: 1, paymentGraceSec: 100 })
    const warnings: string[] = []
    const lease = t.ledger.getLease(leaseId)
    if (lease === null) throw new Error('no lease')
    const reports: SignedUsageReport[] = []
    const m = new LeaseMeter({
      ledger: t.ledger, clock, sampleGpus: simulatedGpuSampler(),
      logger: { debug: () => {}, info: () => {}, warn: (_obj, msg) => { warnings.push(msg ?? '') }, error: () => {} }
    }, lease, { paymentKey: PROVIDER_KEY, onReport: (r) => { reports.push(r) }, onUnpaid: () => {} })
    m.start()
    await vi.advanceTimersByTimeAsync(1_000) // period 0 is queued
    // Another writer appends period 0 first, through its own connection to the file.
    const other = openLedger(t.ledger.path)
    try {
      other.appendUsagePeriod({
        leaseId, periodIndex: 0, startOffsetMs: 0, endOffsetMs: 1000, gpuMs: 1000n, amount: 1n, cumulativeAmount: 1n,
        avgUtilizationBp: null, peakMemoryMiB: null, energyMj: null, final: false, report: '{}'
      })
    } finally {
      other.close()
    }
    await vi.advanceTimersByTimeAsync(1_500)
    m.stop()
    expect(warnings).toContain('usage period not written')
    // Billed by the one rule: the cumulative amount of all time to the period's end, less what the ledger's period 0 billed.
    const cumulative = cumulativeAmount(lease.pricePerGpuHour, 2000n)
    expect(reports.map((r) => [r.report.periodIndex, r.report.startOffsetMs, r.report.amount, r.report.cumulativeAmount])).toEqual([
      [1, 1000, cumulative - 1n, cumulative]
    ])
    expect(t.ledger.usagePeriods(leaseId).map((p) => p.endOffsetMs)).toEqual([1000, 2000])
  })

  it('resumes after a restart from the ledger, never re-billing closed periods', async () => {
    const leaseId = makeLease(t.ledger, { running: true, billingIntervalSec: 2, paymentGraceSec: 100 })
    const first = meter(leaseId)
    first.m.start()
    await vi.advanceTimersByTimeAsync(4_500)
    first.m.stop()
    const second = meter(leaseId)
    second.m.start()
    await vi.advanceTimersByTimeAsync(4_000)
    second.m.closeFinal()
    const periods = t.ledger.usagePeriods(leaseId)
    for (let i = 1; i < periods.length; i++) expect(periods[i]?.startOffsetMs).toBe(periods[i - 1]?.endOffsetMs)
    expect(periods[0]?.startOffsetMs).toBe(0)
  })

  it('after a restart closes a period on its boundary, not one sample later, when the tick fires a hair early and sampling takes time', async () => {
    // A monotonic clock 100 ppm slower than the timers (as real clocks differ): a tick aimed at a
    // boundary fires just before it on the meter's clock. Sampling takes 300 ms, like a GPU tool.
    const skewed: Clock = { now: () => Date.now(), monotonicNow: () => (Date.now() - t0) * 0.9999 }
    const slowSampler = async (gpus: readonly string[]): Promise<Awaited<ReturnType<ReturnType<typeof simulatedGpuSampler>>>> => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return await simulatedGpuSampler()(gpus)
    }
    const leaseId = makeLease(t.ledger, { running: true, billingIntervalSec: 10, paymentGraceSec: 1000 })
    const lease = t.ledger.getLease(leaseId)
    if (lease === null) throw new Error('no lease')
    const reportedAt: Array<{ end: number, at: number }> = []
    const start = (resumeOffsetMs: number): LeaseMeter => {
      const m = new LeaseMeter({ ledger: t.ledger, clock: skewed, sampleGpus: slowSampler }, lease, {
        paymentKey: PROVIDER_KEY,
        resumeOffsetMs,
        onReport: (r) => { reportedAt.push({ end: r.report.endOffsetMs, at: m.offsetMs() }) },
        onUnpaid: () => {}
      })
      m.start()
      return m
    }
    const first = start(0)
    await vi.advanceTimersByTimeAsync(7_000)
    first.stop() // the daemon dies; samples at 0 and 5 s are in the ledger, no period yet
    const resume = t.ledger.lastSample(leaseId)?.offsetMs ?? 0
    expect(resume).toBeGreaterThan(4_000)
    const second = start(resume)
    await vi.advanceTimersByTimeAsync(25_000)
    second.stop()
    expect(reportedAt.map((r) => r.end)).toEqual([10_000, 20_000])
    // Each report goes out within the sampling time after its boundary, not a 5 s sample later.
    for (const r of reportedAt) expect(r.at - r.end).toBeLessThan(1_000)
  })
})
