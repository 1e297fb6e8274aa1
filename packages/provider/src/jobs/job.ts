import type { Bytes32, PaymentKey, SignedUsageReport } from '@gpumesh/protocol'
import type { LeaseRecord, LeaseState } from '@gpumesh/ledger'
import type { JobEventLog, JobEventListener } from './event-log.js'
import type { JobPaths } from './job-dir.js'
import { JobLogTailer, type TailStart } from './log-tailer.js'
import { LeaseMeter, type LeaseMeterComponents } from './meter.js'
import type { JobExit, RunningJob } from './runner.js'
import type { Clock } from '@gpumesh/protocol'

/** How a job's lease ended. */
export interface JobOutcome {
  leaseId: string
  state: Extract<LeaseState, 'completed' | 'failed' | 'terminated'>
  /** EXIT_0, EXIT_<n>, UNPAID, RENTER_CANCEL, MAX_RUNTIME, PROVIDER_SHUTDOWN, ... */
  reason: string
  exitCode: number | null
  /** The final report, or null when the last regular report already covered the whole run. */
  finalReport: SignedUsageReport | null
}

/** Lease-ending reasons the job side writes. */
export type TerminationReason = 'UNPAID' | 'INSUFFICIENT_ESCROW' | 'RENTER_CANCEL' | 'MAX_RUNTIME' | 'PROVIDER_SHUTDOWN' | (string & {})

export interface JobComponents {
  clock: Clock
  /** What the job's meter needs (ledger, clock, GPU sampler, logger). */
  meter: LeaseMeterComponents
}

export interface JobOptions {
  /** Signs the job's usage reports (market domain). */
  paymentKey: PaymentKey
  /** Where metering resumes after a restart (0 for a new job). */
  resumeOffsetMs: number
  /** GPU sampling period; absent: the meter's default. */
  sampleIntervalMs?: number
  /** How often logs and checkpoints are polled. */
  logPollMs: number
  /** Where log tailing starts (after what an earlier daemon sent). */
  tailFrom: TailStart
}

/**
 * What a job tells its owner. Calls flow down (the manager calls the job, the job its meter, tailer
 * and process); what happens flows up through these, so no part calls back into the one above it.
 */
export interface JobEvents {
  /** A usage period before the last closed (its report is in the job's events). */
  period?: (report: SignedUsageReport) => void
  /**
   * The job is over and metered to its end: record the lease's end (before the job's last event goes
   * out, so a renter that hears of the end finds it in the ledger).
   */
  ended: (outcome: JobOutcome, detail: Record<string, unknown>) => void
}

/**
 * One running job: its process, its meter and log tailer, its event log. Built by the JobManager for
 * a lease; stops itself when the meter says the renter did not pay or the lease's time is up; decides
 * how the lease ended when the process exits and hands that up (`JobEvents.ended`), then writes the
 * last event and closes its log.
 */
export class Job {
  readonly leaseId: Bytes32
  readonly paths: JobPaths
  readonly events: JobEventLog
  /** Resolves when the lease has ended and everything is recorded (never, for a detached job). */
  readonly done: Promise<JobOutcome>
  readonly #running: RunningJob
  readonly #meter: LeaseMeter
  readonly #tailer: JobLogTailer
  readonly #clock: Clock
  #stopReason: TerminationReason | null = null
  #stopDetail: string | null = null
  #detached = false

  constructor (lease: LeaseRecord, running: RunningJob, events: JobEventLog, components: JobComponents, options: JobOptions, on: JobEvents) {
    this.leaseId = lease.leaseId as Bytes32
    this.paths = running.paths
    this.events = events
    this.#running = running
    this.#clock = components.clock
    const clock = components.clock
    this.#meter = new LeaseMeter(components.meter, lease, {
      paymentKey: options.paymentKey,
      resumeOffsetMs: options.resumeOffsetMs,
      ...(options.sampleIntervalMs !== undefined ? { sampleIntervalMs: options.sampleIntervalMs } : {}),
      onReport: (report) => {
        // A tick that was in flight when the job was detached: the period is in the ledger, and the
        // daemon that re-attaches sends it from there; this one writes nothing more to the event file.
        if (this.#detached) return
        events.append(clock.now(), { kind: 'usage', report })
        if (!report.report.final) on.period?.(report)
      },
      onUnpaid: () => { void this.stop('UNPAID') },
      onDurationReached: () => { void this.stop('MAX_RUNTIME') }
    })
    // A poll in flight when the job is detached appends nothing: the next daemon tails from the file's record.
    this.#tailer = new JobLogTailer(running.paths, {
      line: (stream, text, end) => { if (!this.#detached) events.append(clock.now(), { kind: 'log', stream, text }, end) },
      checkpoint: (name) => { if (!this.#detached) events.append(clock.now(), { kind: 'checkpoint', text: name }) }
    }, options.logPollMs, options.tailFrom)
    this.#meter.start()
    this.#tailer.start()
    this.done = running.exited.then(async (exit) => await this.#finish(exit, on))
  }

  get pid (): number { return this.#running.pid }
  get detached (): boolean { return this.#detached }
  get stopReason (): TerminationReason | null { return this.#stopReason }
  /** Why the job was stopped, in words (recorded with the lease's end), or null. */
  get stopDetail (): string | null { return this.#stopDetail }

  /** A voucher for `cumulative` was accepted: clears the payment deadlines it covers. */
  paid (cumulative: bigint): void {
    this.#meter.paid(cumulative)
  }

  /** Stops metering and tailing and lets the process run on; `done` then never settles. */
  detach (): void {
    this.#detached = true
    this.#meter.stop()
    this.#tailer.stop()
    this.#running.detach()
    this.events.close()
  }

  /** Subscribe from a sequence number (0: everything still held); returns the unsubscribe function. */
  subscribe (fromSequence: number, listener: JobEventListener): () => void {
    return this.events.subscribe(fromSequence, listener)
  }

  /** SIGTERM, grace, SIGKILL; the lease ends `terminated` with `reason`. Resolves when it has. */
  async stop (reason: TerminationReason, graceMs?: number, detail?: string): Promise<JobOutcome> {
    if (this.#stopReason === null) {
      this.#stopReason = reason
      this.#stopDetail = detail ?? null
    }
    await this.#running.stop(graceMs)
    return await this.done
  }

  async #finish (exit: JobExit, on: JobEvents): Promise<JobOutcome> {
    // A detached job belongs to whichever daemon re-attaches to it next.
    if (this.#detached) return await new Promise<never>(() => {})
    // The meter's onReport already put the final report in the event log (once).
    const finalReport = this.#meter.closeFinal()
    this.#tailer.stop()
    await this.#tailer.poll(true).catch(() => {})
    let state: JobOutcome['state']
    let reason: string
    if (exit.cause === 'max-runtime') {
      state = 'terminated'; reason = 'MAX_RUNTIME'
    } else if (this.#stopReason !== null) {
      state = 'terminated'; reason = this.#stopReason
    } else if (exit.exitCode === 0) {
      state = 'completed'; reason = 'EXIT_0'
    } else {
      state = 'failed'; reason = exit.exitCode === null ? `SIGNAL_${exit.signal ?? 'UNKNOWN'}` : `EXIT_${exit.exitCode}`
    }
    const outcome: JobOutcome = { leaseId: this.leaseId, state, reason, exitCode: exit.exitCode, finalReport }
    on.ended(outcome, { exitCode: exit.exitCode, signal: exit.signal, ...(this.#stopDetail !== null ? { message: this.#stopDetail } : {}) })
    if (state === 'terminated') {
      this.events.append(this.#clock.now(), { kind: 'terminated', state, reason })
    } else {
      this.events.append(this.#clock.now(), { kind: 'exit', exitCode: exit.exitCode, state })
    }
    this.events.close()
    return outcome
  }
}
