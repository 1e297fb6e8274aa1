import { cumulativeAmount, jsonReplacer, marketDomain, signUsageReport } from '@gpumesh/protocol'
import type { Bytes32, PaymentKey, SignedUsageReport, UsageReport } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger, UsagePeriodInput, UsageSample } from '@gpumesh/ledger'
import { RepeatingTask } from '@gpumesh/net'
import type { Clock } from '@gpumesh/protocol'
import { silentLogger, type JobsLogger, type SampleGpus } from './types.js'

/** The lease fields metering needs (a ledger LeaseRecord has them all). */
export type MeteredLease = Pick<LeaseRecord,
  'leaseId' | 'provider' | 'renter' | 'token' | 'chainId' | 'pricePerGpuHour' | 'gpus' | 'durationSec' |
  'billingIntervalSec' | 'paymentGraceSec'>

/**
 * Everything needed to sign usage reports for a lease. Reports are signed under the market domain
 * (`marketDomain(lease.chainId)`, verifying contract zero), on-chain or not, as renters verify them;
 * only vouchers use the settlement domain (the escrow).
 */
export interface ReportSigning {
  paymentKey: PaymentKey
}

/** Which usage period to close: its place in the lease and what earlier periods billed. */
export interface PeriodBounds {
  index: number
  startOffsetMs: number
  endOffsetMs: number
  final: boolean
  previousCumulative: bigint
}

/**
 * Closes the usage period [startOffsetMs, endOffsetMs) of a lease: aggregates its samples from the
 * ledger, prices and signs it (`signUsagePeriod`) and appends the period to the ledger in one durable
 * write. Periods tile the lease: the ledger refuses any other.
 */
export function closeUsagePeriod (ledger: Ledger, lease: MeteredLease, signing: ReportSigning, period: PeriodBounds): SignedUsageReport {
  const samples = ledger.samplesForPeriod(lease.leaseId, period.startOffsetMs, period.endOffsetMs)
  const { signed, row } = signUsagePeriod(lease, signing, period, aggregateSamples(samples, period.endOffsetMs - period.startOffsetMs))
  ledger.appendUsagePeriod(row)
  return signed
}

/**
 * Prices a usage period by the one billing rule (the cumulative amount of all GPU time up to its end,
 * less what earlier periods billed, so rounding never accumulates) and signs its report. Returns the
 * report and the ledger row that records it; writes nothing.
 */
function signUsagePeriod (lease: MeteredLease, signing: ReportSigning, period: PeriodBounds, stats: PeriodStats): { signed: SignedUsageReport, row: UsagePeriodInput } {
  const gpuCount = BigInt(lease.gpus.length)
  const cumulative = cumulativeAmount(lease.pricePerGpuHour, BigInt(period.endOffsetMs) * gpuCount)
  const report: UsageReport = {
    leaseId: lease.leaseId as Bytes32,
    provider: lease.provider,
    renter: lease.renter,
    token: lease.token,
    periodIndex: period.index,
    startOffsetMs: period.startOffsetMs,
    endOffsetMs: period.endOffsetMs,
    gpuMilliseconds: BigInt(period.endOffsetMs - period.startOffsetMs) * gpuCount,
    amount: cumulative - period.previousCumulative,
    cumulativeAmount: cumulative,
    avgUtilizationBp: stats.avgUtilizationBp,
    peakMemoryMiB: stats.peakMemoryMiB,
    energyMilliJoules: stats.energyMilliJoules,
    final: period.final
  }
  const signed: SignedUsageReport = { report, signature: signUsageReport(report, signing.paymentKey, marketDomain(lease.chainId)) }
  const row: UsagePeriodInput = {
    leaseId: lease.leaseId,
    periodIndex: report.periodIndex,
    startOffsetMs: report.startOffsetMs,
    endOffsetMs: report.endOffsetMs,
    gpuMs: report.gpuMilliseconds,
    amount: report.amount,
    cumulativeAmount: report.cumulativeAmount,
    avgUtilizationBp: report.avgUtilizationBp,
    peakMemoryMiB: report.peakMemoryMiB,
    energyMj: report.energyMilliJoules,
    final: report.final,
    report: JSON.stringify(signed, jsonReplacer)
  }
  return { signed, row }
}

/** What a period's statistics are made of: a sample's readings, and where in the lease it was taken. */
export type PeriodSample = Pick<UsageSample, 'offsetMs' | 'gpuUuid' | 'utilizationPercent' | 'memoryUsedMiB' | 'powerW'>

export interface PeriodStats {
  avgUtilizationBp: number | null
  peakMemoryMiB: number | null
  energyMilliJoules: bigint | null
}

/**
 * Mean utilisation (percent × 100) over all samples; peak memory of any GPU; energy as each GPU's mean
 * power × the period's length, summed (W × ms = mJ). Null where no sample says.
 */
export function aggregateSamples (samples: readonly PeriodSample[], lengthMs: number): PeriodStats {
  let utilSum = 0
  let utilCount = 0
  let peak: number | null = null
  const power = new Map<string, { sum: number, count: number }>()
  for (const s of samples) {
    if (s.utilizationPercent !== null) { utilSum += s.utilizationPercent; utilCount++ }
    if (s.memoryUsedMiB !== null) peak = Math.max(peak ?? 0, Math.round(s.memoryUsedMiB))
    if (s.powerW !== null) {
      const p = power.get(s.gpuUuid) ?? { sum: 0, count: 0 }
      p.sum += s.powerW
      p.count++
      power.set(s.gpuUuid, p)
    }
  }
  let energy: number | null = null
  for (const p of power.values()) energy = (energy ?? 0) + (p.sum / p.count) * lengthMs
  return {
    avgUtilizationBp: utilCount === 0 ? null : Math.round((utilSum / utilCount) * 100),
    peakMemoryMiB: peak,
    energyMilliJoules: energy === null ? null : BigInt(Math.round(energy))
  }
}

export interface LeaseMeterComponents {
  ledger: Ledger
  clock: Clock
  sampleGpus: SampleGpus
  logger?: JobsLogger
}

export interface LeaseMeterOptions extends ReportSigning {
  /** How often GPUs are sampled; default the billing interval divided into steps of at most 5 s. */
  sampleIntervalMs?: number
  /** Where metering resumes (after a restart): the end of the last recorded period or sample. */
  resumeOffsetMs?: number
  /** Each closed period's signed report, in order. */
  onReport: (report: SignedUsageReport) => void
  /** No voucher covering a report came within the payment grace: stop the job. Called once. */
  onUnpaid: (info: { reportedCumulative: bigint, paidCumulative: bigint, deadlineOffsetMs: number }) => void
  /** The lease's duration is used up: stop the job. Called once. */
  onDurationReached?: () => void
}

const MAX_SAMPLE_INTERVAL_MS = 5_000

/**
 * Meters one running lease. Billed time is the provider's monotonic clock since the job started,
 * bounded by the lease duration; each billing interval closes one period on the interval grid
 * (k × interval), the last one (`closeFinal`) at the job's end.
 *
 * Samples go to the ledger as they are taken (queued: one transaction for every lease sampling in the
 * same turn) and are kept here until their period closes, so a period is priced from memory. A period
 * that closes on a tick is queued too (`queueUsagePeriod`: one fsync for every period closing in the
 * turn); its report goes out (`onReport`) once the ledger has it. A kill -9 therefore loses at most
 * the sample in flight and a period whose report was never sent; the restarted meter closes that span
 * again. The final period is written at once, after those still queued.
 *
 * Payment: each report that raises the amount owed opens a deadline (report time + payment grace); a
 * voucher covering it (`paid`) clears it; a deadline that passes calls `onUnpaid`.
 */
export class LeaseMeter {
  readonly #c: LeaseMeterComponents
  readonly #o: LeaseMeterOptions
  readonly #lease: MeteredLease
  readonly #intervalMs: number
  readonly #graceMs: number
  readonly #durationMs: number
  readonly #sampleMs: number
  readonly #logger: JobsLogger
  #task: RepeatingTask | null = null
  #base = 0
  #lastEnd = 0
  #nextIndex = 0
  #cumulative = 0n
  /** Samples taken at or after `#lastEnd`: the open period's. */
  #samples: PeriodSample[] = []
  #paid = 0n
  #closed = false
  #unpaidFired = false
  #durationFired = false
  #deadlines: Array<{ cumulative: bigint, at: number }> = []
  #deadlineTimer: ReturnType<typeof setTimeout> | null = null

  constructor (components: LeaseMeterComponents, lease: MeteredLease, options: LeaseMeterOptions) {
    this.#c = components
    this.#o = options
    this.#lease = lease
    this.#logger = components.logger ?? silentLogger
    this.#intervalMs = lease.billingIntervalSec * 1000
    this.#graceMs = lease.paymentGraceSec * 1000
    this.#durationMs = lease.durationSec * 1000
    this.#sampleMs = options.sampleIntervalMs ?? this.#intervalMs / Math.ceil(this.#intervalMs / MAX_SAMPLE_INTERVAL_MS)
  }

  /** Begins metering now (offset 0, or `resumeOffsetMs`). Picks up periods, samples and vouchers already in the ledger. */
  start (): void {
    if (this.#task !== null || this.#closed) return
    this.#readPeriods()
    this.#paid = this.#c.ledger.latestVoucher(this.#lease.leaseId)?.cumulativeAmount ?? 0n
    if (this.#closed) return
    this.#base = this.#c.clock.monotonicNow() - Math.max(this.#o.resumeOffsetMs ?? 0, this.#lastEnd)
    this.#task = new RepeatingTask({
      intervalMs: this.#sampleMs,
      runAtStart: true,
      onError: (err) => { this.#logger.warn({ err, leaseId: this.#lease.leaseId }, 'metering tick failed') },
      nextDelayMs: () => this.#sampleMs - (this.offsetMs() % this.#sampleMs)
    }, async () => { await this.#tick() })
    this.#task.start()
  }

  /** Stops timers; closes nothing (use closeFinal first for a job that ended). */
  stop (): void {
    // Synchronous: no tick starts after this; a tick already in flight finishes.
    void this.#task?.stop()
    this.#task = null
    if (this.#deadlineTimer !== null) clearTimeout(this.#deadlineTimer)
    this.#deadlineTimer = null
  }

  /** Milliseconds of the lease so far on the monotonic clock, not bounded. */
  offsetMs (): number {
    return this.#c.clock.monotonicNow() - this.#base
  }

  get reportedCumulative (): bigint { return this.#cumulative }
  get paidCumulative (): bigint { return this.#paid }
  get closed (): boolean { return this.#closed }

  /** A voucher for `cumulative` was accepted: clears every deadline it covers. */
  paid (cumulative: bigint): void {
    if (cumulative > this.#paid) this.#paid = cumulative
    this.#deadlines = this.#deadlines.filter((d) => d.cumulative > this.#paid)
    this.#armDeadline()
  }

  /**
   * Closes the last period at the job's end (bounded by the lease duration), marked final, and stops.
   * Periods still queued are written (and reported) first. Returns the final report, or null when
   * there is nothing left to bill (already final, or the job ended exactly on a period boundary — the
   * previous report then stands as the last). Throws when the ledger refuses the final period.
   */
  closeFinal (): SignedUsageReport | null {
    if (this.#closed) return null
    const end = Math.min(Math.floor(this.offsetMs()), this.#durationMs)
    this.stop()
    this.#closed = true
    this.#c.ledger.flushUsage()
    if (end <= this.#lastEnd) return null
    const { signed, row } = this.#sign(end, true)
    this.#c.ledger.appendUsagePeriod(row)
    this.#advance(signed)
    this.#o.onReport(signed)
    return signed
  }

  async #tick (): Promise<void> {
    if (this.#closed) return
    const offset = Math.floor(this.offsetMs())
    if (offset < this.#durationMs) {
      const at = this.#c.clock.now()
      try {
        const readings = await this.#c.sampleGpus(this.#lease.gpus)
        if (this.#closed) return
        const samples = readings.map((r) => ({
          leaseId: this.#lease.leaseId, offsetMs: offset, at, gpuUuid: r.uuid,
          utilizationPercent: r.utilizationPercent, memoryUsedMiB: r.memoryUsedMiB, powerW: r.powerDrawW
        }))
        this.#c.ledger.queueUsageSamples(samples)
        this.#samples.push(...samples)
      } catch (err) {
        // A failed reading loses detail, never billed time: the period still closes.
        if (this.#closed) return
        this.#logger.warn({ err, leaseId: this.#lease.leaseId }, 'GPU sample failed')
      }
    }
    // Close up to the last whole interval; the period that ends at the lease's end is the final one.
    // The offset is read again after sampling: a tick the timer fires a fraction of a millisecond
    // before a boundary (its clock and the monotonic one differ, and a restart resumes off the
    // millisecond grid) would otherwise leave that period open until the next sample.
    const bounded = Math.min(Math.max(offset, Math.floor(this.offsetMs())), this.#durationMs)
    const gridEnd = Math.floor(bounded / this.#intervalMs) * this.#intervalMs
    if (gridEnd > this.#lastEnd && gridEnd < this.#durationMs) this.#closePeriod(gridEnd)
    if (offset >= this.#durationMs && !this.#durationFired) {
      this.#durationFired = true
      this.#o.onDurationReached?.()
    }
  }

  /** Closes a regular period up to `end`: queued to the ledger, reported once it is written. */
  #closePeriod (end: number): void {
    const { signed, row } = this.#sign(end, false)
    this.#advance(signed)
    const closedAt = this.offsetMs()
    this.#c.ledger.queueUsagePeriod(row, {
      written: () => { this.#reported(signed, closedAt) },
      failed: (err) => {
        // Nothing of it was written: start again from what the ledger holds; the next tick closes the span again.
        this.#logger.warn({ err, leaseId: this.#lease.leaseId, periodIndex: row.periodIndex }, 'usage period not written')
        this.#readPeriods()
      }
    })
  }

  /** Signs the period from the last end to `end`, priced from the samples taken in it. */
  #sign (end: number, final: boolean): ReturnType<typeof signUsagePeriod> {
    const inPeriod = this.#samples.filter((x) => x.offsetMs < end)
    const stats = aggregateSamples(inPeriod, end - this.#lastEnd)
    return signUsagePeriod(this.#lease, this.#o, {
      index: this.#nextIndex, startOffsetMs: this.#lastEnd, endOffsetMs: end, final, previousCumulative: this.#cumulative
    }, stats)
  }

  #advance (signed: SignedUsageReport): void {
    const { report } = signed
    this.#nextIndex = report.periodIndex + 1
    this.#lastEnd = report.endOffsetMs
    this.#cumulative = report.cumulativeAmount
    this.#samples = this.#samples.filter((x) => x.offsetMs >= report.endOffsetMs)
  }

  /**
   * The period closed at `closedAt` is in the ledger: its report goes out, and the payment deadline
   * it opens runs from its close.
   */
  #reported (signed: SignedUsageReport, closedAt: number): void {
    const cumulative = signed.report.cumulativeAmount
    // A stopped meter (its job detached) opens no deadline: whoever meters the lease next does.
    if (this.#task !== null && !this.#closed && cumulative > this.#paid) {
      this.#deadlines.push({ cumulative, at: closedAt + this.#graceMs })
      // Deadlines come in order: one already armed is for an earlier one, which stays first.
      if (this.#deadlineTimer === null) this.#armDeadline()
    }
    this.#o.onReport(signed)
  }

  /** Where the lease's periods stand in the ledger, and the samples of the one still open. */
  #readPeriods (): void {
    const last = this.#c.ledger.lastUsagePeriod(this.#lease.leaseId)
    this.#lastEnd = last?.endOffsetMs ?? 0
    this.#nextIndex = last === null ? 0 : last.periodIndex + 1
    this.#cumulative = last?.cumulativeAmount ?? 0n
    if (last?.final === true) this.#closed = true
    this.#samples = this.#c.ledger.samplesForPeriod(this.#lease.leaseId, this.#lastEnd, Number.MAX_SAFE_INTEGER)
  }

  #armDeadline (): void {
    if (this.#deadlineTimer !== null) clearTimeout(this.#deadlineTimer)
    this.#deadlineTimer = null
    const first = this.#deadlines[0]
    if (first === undefined || this.#unpaidFired || this.#closed) return
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = null
      if (this.#deadlines.length === 0 || this.#closed || this.#unpaidFired) return
      if (this.offsetMs() < first.at) { this.#armDeadline(); return }
      this.#unpaidFired = true
      this.#logger.warn({ leaseId: this.#lease.leaseId, reported: this.#cumulative, paid: this.#paid }, 'no voucher within the payment grace')
      this.#o.onUnpaid({ reportedCumulative: this.#cumulative, paidCumulative: this.#paid, deadlineOffsetMs: first.at })
    }, Math.max(0, first.at - this.offsetMs()))
  }
}
