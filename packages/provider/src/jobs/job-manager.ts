import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import type { Bytes32, JobSpec, PaymentKey, SignedUsageReport, Voucher } from '@gpumesh/protocol'
import { validateSignedUsageReport } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import { artifactStream, cleanupArtifacts } from './artifacts.js'
import { extractBundle } from './bundle.js'
import { BundleError, JobError } from './errors.js'
import { EVENTS_FILE } from './event-file.js'
import { DEFAULT_EVENT_HISTORY, JobEventLog, type EventLogState, type JobEventListener, type JobOutcome } from './job.js'
import { jobPaths, makeJobDirs, type JobPaths } from './job-dir.js'
import { JobLogTailer, type TailStart } from './log-tailer.js'
import { LeaseMeter } from './meter.js'
import type { GpuVendorKind, JobExit, JobRunner, RunningJob } from './runner.js'
import type { Clock } from '@gpumesh/protocol'
import { silentLogger, type JobsLogger, type SampleGpus } from './types.js'
import { acceptVoucher, type AcceptedVoucher } from './voucher.js'

export interface JobManagerComponents {
  ledger: Ledger
  /** Null when `runner.kind` is `none`: no job is accepted. */
  runner: JobRunner | null
  clock: Clock
  sampleGpus: SampleGpus
  /** The provider's payment key: signs usage reports (market domain). */
  paymentKey: PaymentKey
  /**
   * On-chain settlement: after each usage period, whether the renter's escrow still covers what is
   * unredeemed plus the next interval. Null (or absent) off-chain. A job whose renter's escrow does
   * not is stopped, its lease ended `terminated` with reason INSUFFICIENT_ESCROW.
   */
  escrowCheck?: ((lease: LeaseRecord) => Promise<{ covered: boolean, message: string }>) | null
  logger?: JobsLogger
}

export interface JobManagerOptions {
  /** Where job directories live: `<dataDir>/jobs`. */
  jobsDir: string
  /** runner.stopGraceSec in ms. */
  stopGraceMs: number
  /** runner.maxBundleBytes: the compressed cap. */
  maxBundleBytes: number
  /** The uncompressed cap; default 4 × maxBundleBytes. */
  maxBundleUncompressedBytes?: number
  /** runner.artifactRetentionSec. */
  artifactRetentionSec: number
  /** How often logs and checkpoints are polled; default 200 ms. */
  logPollMs?: number
  /** GPU sampling period; default the billing interval in steps of at most 5 s. */
  sampleIntervalMs?: number
  /** Events of a running job held in memory (older ones are read back from its event file). */
  maxEventHistory?: number
  /** Ended leases whose event logs (a few events each; the rest stays in the file) are kept open. */
  endedLogs?: number
}

/** Events of an ended lease held in memory; the rest is read from its event file on demand. */
const ENDED_LOG_HISTORY = 16

/** Lease-ending reasons the job side writes. */
export type TerminationReason = 'UNPAID' | 'INSUFFICIENT_ESCROW' | 'RENTER_CANCEL' | 'MAX_RUNTIME' | 'PROVIDER_SHUTDOWN' | (string & {})

export interface LeaseEndedEvent {
  leaseId: string
  state: JobOutcome['state']
  reason: string
}

/** One running job: its events, its meter, its process. Obtained from JobManager. */
export class Job {
  readonly leaseId: Bytes32
  readonly paths: JobPaths
  readonly events: JobEventLog
  /** Resolves when the lease has ended and everything is recorded (never, for a detached job). */
  readonly done: Promise<JobOutcome>
  readonly #running: RunningJob
  readonly #meter: LeaseMeter
  readonly #tailer: JobLogTailer
  #stopReason: TerminationReason | null = null
  #stopDetail: string | null = null
  #detached = false

  /** @internal built by JobManager */
  constructor (init: {
    lease: LeaseRecord
    running: RunningJob
    events: JobEventLog
    meter: (job: Job) => LeaseMeter
    tailer: (job: Job) => JobLogTailer
    finish: (job: Job, exit: JobExit) => Promise<JobOutcome>
  }) {
    this.leaseId = init.lease.leaseId
    this.paths = init.running.paths
    this.#running = init.running
    this.events = init.events
    this.#meter = init.meter(this)
    this.#tailer = init.tailer(this)
    this.#meter.start()
    this.#tailer.start()
    this.done = init.running.exited.then(async (exit) => await init.finish(this, exit))
  }

  get pid (): number { return this.#running.pid }
  get detached (): boolean { return this.#detached }

  /** @internal Stops metering and tailing and lets the process run on; `done` then never settles. */
  detach (): void {
    this.#detached = true
    this.#meter.stop()
    this.#tailer.stop()
    this.#running.detach()
    this.events.close()
  }
  get stopReason (): TerminationReason | null { return this.#stopReason }
  /** Why the job was stopped, in words (recorded with the lease's end), or null. */
  get stopDetail (): string | null { return this.#stopDetail }
  get meter (): LeaseMeter { return this.#meter }
  get tailer (): JobLogTailer { return this.#tailer }

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
}

/**
 * The job side of the provider, without the network: creates a job for an accepted lease (bundle,
 * runner, meter, logs), streams its events, takes vouchers, terminates, serves artifacts, and ends the
 * lease in the ledger. The job protocol handler sits on top of it.
 */
export class JobManager {
  readonly #c: JobManagerComponents
  readonly #o: Required<JobManagerOptions>
  readonly #logger: JobsLogger
  readonly #jobs = new Map<string, Job>()
  readonly #ended = new Set<(e: LeaseEndedEvent) => void>()
  /** Event logs of ended leases, loaded on demand (oldest dropped first). */
  readonly #endedLogs = new Map<string, Promise<JobEventLog | null>>()
  #controller: AbortController | null = null

  constructor (components: JobManagerComponents, options: JobManagerOptions) {
    this.#c = components
    this.#logger = components.logger ?? silentLogger
    this.#o = {
      maxBundleUncompressedBytes: options.maxBundleBytes * 4,
      logPollMs: 200,
      sampleIntervalMs: 0,
      maxEventHistory: DEFAULT_EVENT_HISTORY,
      endedLogs: 256,
      ...options
    }
  }

  start (): void {
    this.#controller ??= new AbortController()
  }

  /**
   * Stops taking jobs. `terminate` (default) stops every job (SIGTERM, grace, SIGKILL) and ends its
   * lease PROVIDER_SHUTDOWN; `detach` leaves jobs running for recovery to re-attach after a restart.
   */
  async stop (options: { jobs?: 'terminate' | 'detach' } = {}): Promise<void> {
    if (this.#controller === null) return
    this.#controller.abort()
    this.#controller = null
    const jobs = [...this.#jobs.values()]
    if (options.jobs === 'detach') {
      for (const job of jobs) job.detach()
      this.#jobs.clear()
      return
    }
    await Promise.all(jobs.map(async (job) => await job.stop('PROVIDER_SHUTDOWN')))
  }

  get (leaseId: string): Job | undefined {
    return this.#jobs.get(leaseId.toLowerCase())
  }

  list (): Job[] { return [...this.#jobs.values()] }

  /** Called with every lease the job side ended, at once, so its GPUs can go back on offer. */
  onLeaseEnded (listener: (e: LeaseEndedEvent) => void): () => void {
    this.#ended.add(listener)
    return () => { this.#ended.delete(listener) }
  }

  /**
   * Starts the job of an accepted lease: makes its directory, extracts the bundle (checking its sha256
   * against the lease's jobHash), starts the runner, moves the lease to `running` and records the
   * process for recovery. A bad bundle or a failed start ends the lease `failed` and throws.
   */
  async createJob (leaseId: string, spec: JobSpec, bundle: AsyncIterable<Uint8Array> | null, options: { signal?: AbortSignal } = {}): Promise<Job> {
    if (this.#controller === null) throw new JobError('STOPPED', 'the job manager is not running')
    const runner = this.#c.runner
    if (runner === null) throw new JobError('RUNNER_DISABLED', 'this provider runs no jobs (runner.kind: none)')
    const lease = this.#c.ledger.getLease(leaseId)
    if (lease === null) throw new JobError('LEASE_NOT_FOUND', `no lease ${leaseId}`)
    if (lease.state !== 'accepted') throw new JobError('LEASE_NOT_STARTABLE', `lease ${leaseId} is ${lease.state}`)
    if (this.#jobs.has(lease.leaseId)) throw new JobError('JOB_EXISTS', `lease ${leaseId} already has a job`)
    if (runner.kind === 'docker' && (spec.image === null || spec.image === '')) throw new JobError('BAD_SPEC', 'the docker runner needs an image')
    if (!(spec.maxRunTimeSec > 0)) throw new JobError('BAD_SPEC', 'maxRunTimeSec must be positive')

    const paths = jobPaths(this.#o.jobsDir, lease.leaseId)
    const fail = (reason: string, err: unknown): never => {
      this.#endLease(lease.leaseId, 'failed', reason, { message: (err as Error).message })
      throw err
    }
    try {
      await makeJobDirs(paths)
      if (bundle !== null) {
        const extracted = await extractBundle(bundle, paths.work, {
          maxCompressedBytes: this.#o.maxBundleBytes,
          maxUncompressedBytes: this.#o.maxBundleUncompressedBytes,
          ...(options.signal !== undefined ? { signal: options.signal } : {})
        })
        if (extracted.sha256.toLowerCase() !== lease.jobHash.toLowerCase()) {
          throw new JobError('BUNDLE_HASH_MISMATCH', `bundle sha256 ${extracted.sha256} is not the order's jobHash ${lease.jobHash}`)
        }
      }
    } catch (err) {
      await rm(paths.work, { recursive: true, force: true })
      return fail(err instanceof BundleError ? 'BAD_BUNDLE' : err instanceof JobError ? err.code : 'JOB_SETUP_FAILED', err)
    }

    // A fresh event file: nothing from an earlier attempt at this lease (there is none: it was `accepted`).
    // Opened before the runner starts, so its set-up (an image pull) shows in the job's events.
    await rm(join(paths.root, EVENTS_FILE), { force: true })
    const events = this.#newLog(lease.leaseId, join(paths.root, EVENTS_FILE))
    let running: RunningJob
    try {
      running = await runner.start({
        leaseId: lease.leaseId, paths, gpus: lease.gpus, vendor: this.#vendorOf(lease.gpus), spec,
        maxRunTimeMs: spec.maxRunTimeSec * 1000,
        progress: (text) => { events.append(this.#c.clock.now(), { kind: 'log', stream: 'stderr', text: text.slice(0, 1024) }) }
      })
    } catch (err) {
      events.close()
      // Nothing ran and nothing is billed. RUNNER_FAILED is the provider's own set-up failing: recorded as its fault.
      const code = err instanceof JobError && (err.code === 'RUNNER_FAILED' || err.code === 'IMAGE_UNAVAILABLE') ? err.code : 'SPAWN_FAILED'
      this.#endLease(lease.leaseId, 'failed', code, { message: (err as Error).message, ...(code === 'RUNNER_FAILED' ? { fault: 'provider' } : {}) })
      throw err
    }
    let started: LeaseRecord
    try {
      started = this.#c.ledger.transitionLease(lease.leaseId, 'running', 'JOB_STARTED', {
        pid: running.pid, runner: runner.kind, ...(running.image !== undefined ? { image: running.image } : {})
      })
    } catch (err) {
      // The lease moved on while the runner set up (expired at its start deadline during a long pull,
      // cancelled): the job it started must not run unmetered.
      events.close()
      await running.stop(0)
      throw err
    }
    this.#c.ledger.setLeaseJob(lease.leaseId, { pid: running.pid, pidStartTime: running.pidStartTime, jobDir: paths.root })
    events.append(this.#c.clock.now(), { kind: 'started' })
    return this.#track(started, running, events, 0, {})
  }

  /**
   * Takes over a job that recovery re-attached to after a restart. Its event log is loaded from its
   * event file (same sequence numbers, numbering on); usage periods the ledger has but the file lacks
   * (the daemon died between the two writes) are sent first, in order; log tailing resumes just after
   * the last line sent; metering resumes where the ledger stops.
   */
  async resume (lease: LeaseRecord, running: RunningJob): Promise<Job> {
    const lastPeriod = this.#c.ledger.lastUsagePeriod(lease.leaseId)?.endOffsetMs ?? 0
    const lastSample = this.#c.ledger.lastSample(lease.leaseId)?.offsetMs ?? 0
    const { log, state } = await JobEventLog.load(lease.leaseId, join(running.paths.root, EVENTS_FILE), {
      maxHistory: this.#o.maxEventHistory, onWriteError: this.#writeError(lease.leaseId)
    })
    if (log.lastSequence === 0) log.append(lease.startedAt ?? this.#c.clock.now(), { kind: 'started' })
    this.#appendMissingPeriods(log, state)
    return this.#track(lease, running, log, Math.max(lastPeriod, lastSample), {
      stdout: state.logEnd.stdout, stderr: state.logEnd.stderr, checkpoints: state.checkpoints
    })
  }

  /**
   * The event log of a lease whose job ended (before or after this daemon started), read from its event
   * file: what a renter attaching after the end replays. Completed from the ledger where the file falls
   * short (usage periods it lacks, the ending). Null when the lease never ran a job or is not ended.
   * A handful of events stay in memory; the rest is read from the file on demand.
   */
  async endedEvents (leaseId: string): Promise<JobEventLog | null> {
    const lease = this.#c.ledger.getLease(leaseId)
    if (lease === null || lease.startedAt === null || !['completed', 'failed', 'terminated'].includes(lease.state)) return null
    const key = lease.leaseId.toLowerCase()
    let loading = this.#endedLogs.get(key)
    if (loading === undefined) {
      loading = this.#loadEnded(lease)
      this.#endedLogs.set(key, loading)
      loading.catch(() => { this.#endedLogs.delete(key) })
      if (this.#endedLogs.size > this.#o.endedLogs) {
        const oldest = this.#endedLogs.keys().next().value
        if (oldest !== undefined) this.#endedLogs.delete(oldest)
      }
    }
    return await loading
  }

  async #loadEnded (lease: LeaseRecord): Promise<JobEventLog | null> {
    const root = lease.jobDir ?? jobPaths(this.#o.jobsDir, lease.leaseId).root
    const file = join(root, EVENTS_FILE)
    // The directory may be gone (artifact retention): then the log is rebuilt from the ledger, in memory.
    const stored = existsSync(root)
    const { log, state } = stored
      ? await JobEventLog.load(lease.leaseId, file, { maxHistory: ENDED_LOG_HISTORY, onWriteError: this.#writeError(lease.leaseId) })
      : { log: new JobEventLog(lease.leaseId, { file: null }), state: null }
    if (log.lastSequence === 0) log.append(lease.startedAt ?? lease.endedAt ?? this.#c.clock.now(), { kind: 'started' })
    this.#appendMissingPeriods(log, state)
    if (!log.ended) this.#appendEnding(log, lease)
    log.close()
    return log
  }

  /** Usage periods in the ledger after the last one the log sent, in order, as usage events. */
  #appendMissingPeriods (log: JobEventLog, state: EventLogState | null): void {
    const sent = state?.lastPeriodIndex ?? -1
    const last = this.#c.ledger.lastUsagePeriod(log.leaseId)
    if (last === null || last.periodIndex <= sent) return
    for (const period of this.#c.ledger.usagePeriods(log.leaseId)) {
      if (period.periodIndex <= sent) continue
      let report: SignedUsageReport
      try {
        report = validateSignedUsageReport(JSON.parse(period.report))
      } catch (err) {
        this.#logger.error({ err, leaseId: log.leaseId, periodIndex: period.periodIndex }, 'a stored usage report does not parse')
        return
      }
      log.append(this.#c.clock.now(), { kind: 'usage', report })
    }
  }

  /** The lease's ending, as recorded in the ledger, as the log's last event. */
  #appendEnding (log: JobEventLog, lease: LeaseRecord): void {
    const at = lease.endedAt ?? this.#c.clock.now()
    if (lease.state === 'terminated') {
      log.append(at, { kind: 'terminated', state: lease.state, reason: lease.stateReason.slice(0, 128) || 'UNKNOWN' })
    } else {
      log.append(at, { kind: 'exit', exitCode: lease.exitCode, state: lease.state })
    }
  }

  #newLog (leaseId: Bytes32, file: string): JobEventLog {
    return new JobEventLog(leaseId, { file, maxHistory: this.#o.maxEventHistory, onWriteError: this.#writeError(leaseId) })
  }

  #writeError (leaseId: string): (err: unknown) => void {
    let logged = false
    return (err) => {
      if (logged) return
      logged = true
      this.#logger.error({ err, leaseId }, 'could not write the job\'s event file: its events are in memory only')
    }
  }

  /** Checks and stores a voucher; clears the payment deadlines it covers. Throws VoucherRefusedError. */
  acceptVoucher (leaseId: string, voucher: Voucher): AcceptedVoucher {
    const accepted = acceptVoucher(this.#c.ledger, voucher, leaseId)
    this.get(leaseId)?.meter.paid(accepted.cumulativeAmount)
    return accepted
  }

  /** Ends a job early (RENTER_CANCEL, ...). Throws JOB_NOT_FOUND when no job runs for the lease. */
  async terminate (leaseId: string, reason: TerminationReason): Promise<JobOutcome> {
    const job = this.get(leaseId)
    if (job === undefined) throw new JobError('JOB_NOT_FOUND', `no running job for lease ${leaseId}`)
    return await job.stop(reason)
  }

  /** The job's output and checkpoints as a tar.gz stream (during the run or after, until retention). */
  artifacts (leaseId: string): Readable {
    return artifactStream(jobPaths(this.#o.jobsDir, leaseId))
  }

  async cleanupArtifacts (): Promise<string[]> {
    return await cleanupArtifacts({
      jobsDir: this.#o.jobsDir, ledger: this.#c.ledger, clock: this.#c.clock, retentionSec: this.#o.artifactRetentionSec, logger: this.#logger
    })
  }

  #vendorOf (gpus: readonly string[]): GpuVendorKind {
    // A simulated GPU is no device at all, whatever vendor its model has: the runner gives it none.
    const vendors = new Set(this.#c.ledger.listGpus().filter((g) => gpus.includes(g.uuid)).map((g) => g.simulated ? 'simulated' : g.vendor))
    if (vendors.has('amd')) return 'amd'
    if (vendors.has('nvidia')) return 'nvidia'
    return 'simulated'
  }

  #track (lease: LeaseRecord, running: RunningJob, events: JobEventLog, resumeOffsetMs: number, tailFrom: TailStart): Job {
    const { clock } = this.#c
    const job: Job = new Job({
      lease,
      running,
      events,
      meter: (j) => new LeaseMeter(
        { ledger: this.#c.ledger, clock, sampleGpus: this.#c.sampleGpus, logger: this.#logger },
        lease,
        {
          paymentKey: this.#c.paymentKey,
          resumeOffsetMs,
          ...(this.#o.sampleIntervalMs > 0 ? { sampleIntervalMs: this.#o.sampleIntervalMs } : {}),
          onReport: (report: SignedUsageReport) => {
            // A tick that was in flight when the job was detached: the period is in the ledger, and the
            // daemon that re-attaches sends it from there; this one writes nothing more to the event file.
            if (j.detached) return
            events.append(clock.now(), { kind: 'usage', report })
            if (!report.report.final) this.#checkEscrow(j, lease)
          },
          onUnpaid: () => { void j.stop('UNPAID') },
          onDurationReached: () => { void j.stop('MAX_RUNTIME') }
        }),
      // A poll in flight when the job is detached appends nothing: the next daemon tails from the file's record.
      tailer: (j) => new JobLogTailer(running.paths, {
        line: (stream, text, end) => { if (!j.detached) events.append(clock.now(), { kind: 'log', stream, text }, end) },
        checkpoint: (name) => { if (!j.detached) events.append(clock.now(), { kind: 'checkpoint', text: name }) }
      }, this.#o.logPollMs, tailFrom),
      finish: async (j, exit) => await this.#finish(j, exit)
    })
    this.#jobs.set(lease.leaseId, job)
    this.#logger.info({ leaseId: lease.leaseId, jobPid: running.pid }, 'job running')
    return job
  }

  /** After a period: stops the job when the renter's escrow no longer covers the next one. */
  #checkEscrow (job: Job, lease: LeaseRecord): void {
    const check = this.#c.escrowCheck
    if (check == null) return
    check(lease).then((verdict) => {
      if (verdict.covered || job.stopReason !== null || job.detached) return
      this.#logger.warn({ leaseId: lease.leaseId, reason: verdict.message }, 'the renter\'s escrow does not cover the next interval: stopping the job')
      void job.stop('INSUFFICIENT_ESCROW', undefined, verdict.message)
    }, (err: unknown) => {
      // The chain could not be read: the job goes on; vouchers still bound what is at risk (UNPAID).
      this.#logger.warn({ err, leaseId: lease.leaseId }, 'could not read the renter\'s escrow after a usage period')
    })
  }

  async #finish (job: Job, exit: JobExit): Promise<JobOutcome> {
    // A detached job belongs to whichever daemon re-attaches to it next.
    if (job.detached) return await new Promise<never>(() => {})
    const { clock } = this.#c
    // The meter's onReport already put the final report in the event log (once).
    const finalReport = job.meter.closeFinal()
    job.tailer.stop()
    await job.tailer.poll(true).catch(() => {})
    let state: JobOutcome['state']
    let reason: string
    if (exit.cause === 'max-runtime') {
      state = 'terminated'; reason = 'MAX_RUNTIME'
    } else if (job.stopReason !== null) {
      state = 'terminated'; reason = job.stopReason
    } else if (exit.exitCode === 0) {
      state = 'completed'; reason = 'EXIT_0'
    } else {
      state = 'failed'; reason = exit.exitCode === null ? `SIGNAL_${exit.signal ?? 'UNKNOWN'}` : `EXIT_${exit.exitCode}`
    }
    this.#endLease(job.leaseId, state, reason, {
      exitCode: exit.exitCode, signal: exit.signal, ...(job.stopDetail !== null ? { message: job.stopDetail } : {})
    }, exit.exitCode)
    if (state === 'terminated') {
      job.events.append(clock.now(), { kind: 'terminated', state, reason })
    } else {
      job.events.append(clock.now(), { kind: 'exit', exitCode: exit.exitCode, state })
    }
    job.events.close()
    this.#jobs.delete(job.leaseId)
    return { leaseId: job.leaseId, state, reason, exitCode: exit.exitCode, finalReport }
  }

  #endLease (leaseId: string, state: JobOutcome['state'], reason: string, detail: Record<string, unknown>, exitCode: number | null = null): void {
    try {
      this.#c.ledger.transitionLease(leaseId, state, reason, detail, { exitCode })
    } catch (err) {
      this.#logger.error({ err, leaseId, state, reason }, 'could not record the end of a lease')
      return
    }
    for (const listener of this.#ended) {
      try { listener({ leaseId, state, reason }) } catch (err) { this.#logger.warn({ err }, 'lease-ended listener failed') }
    }
  }
}

/** A job directory's paths from the root stored in the ledger (`leases.job_dir`). */
export function pathsFromJobDir (jobDir: string, leaseId: string): JobPaths {
  return jobPaths(dirname(jobDir), leaseId)
}
