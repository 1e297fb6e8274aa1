import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type { JobSpec, PaymentKey, Voucher } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import { artifactStream, cleanupArtifacts } from './artifacts.js'
import { extractBundle } from './bundle.js'
import { BundleError, JobError } from './errors.js'
import { EVENTS_FILE } from './event-file.js'
import { DEFAULT_EVENT_HISTORY, type JobEventLog } from './event-log.js'
import { EventLogRebuilder } from './event-log-rebuild.js'
import { Job, type JobOutcome, type TerminationReason } from './job.js'
import { jobPaths, makeJobDirs } from './job-dir.js'
import type { TailStart } from './log-tailer.js'
import { recoverLeases, type RecoveryResult } from './recovery.js'
import type { GpuVendorKind, JobRunner, RunningJob } from './runner.js'
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

export interface LeaseEndedEvent {
  leaseId: string
  state: JobOutcome['state']
  reason: string
}

/**
 * The job side of the provider, without the network, and the one owner of a lease's end: creates a job
 * for an accepted lease (bundle, runner, meter, logs), takes vouchers, cancels and terminates, expires
 * leases whose job never started, recovers jobs after a restart, serves artifacts, and writes every
 * ending to the ledger. The job protocol handler sits on top of it and asks; it never ends a lease itself.
 */
export class JobManager {
  readonly #c: JobManagerComponents
  readonly #o: Required<JobManagerOptions>
  readonly #logger: JobsLogger
  readonly #jobs = new Map<string, Job>()
  /** Leases whose job is being set up (bundle, runner start): not startable or cancellable meanwhile. */
  readonly #starting = new Set<string>()
  readonly #ended = new Set<(e: LeaseEndedEvent) => void>()
  readonly #logs: EventLogRebuilder
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
    this.#logs = new EventLogRebuilder({ ledger: components.ledger, clock: components.clock, logger: this.#logger }, {
      jobsDir: this.#o.jobsDir, maxEventHistory: this.#o.maxEventHistory, endedLogs: this.#o.endedLogs
    })
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

  /** True while the job of this lease is being set up (its bundle received, its runner starting). */
  starting (leaseId: string): boolean {
    return this.#starting.has(leaseId.toLowerCase())
  }

  /** Called with every lease a job of this manager ended, at once. */
  onLeaseEnded (listener: (e: LeaseEndedEvent) => void): () => void {
    this.#ended.add(listener)
    return () => { this.#ended.delete(listener) }
  }

  /**
   * Running leases found when the daemon starts: a job still alive is re-attached (`resume`), one that
   * is gone closes its lease, billed to its last sample. See `recoverLeases`.
   */
  async recover (): Promise<RecoveryResult> {
    return await recoverLeases(this.#c.ledger, this.#c.runner, { jobs: this, paymentKey: this.#c.paymentKey, logger: this.#logger })
  }

  /** Accepted leases whose start deadline passed without a job: `expired`, their GPUs freed. Returns their ids. */
  expireOverdue (now: number): string[] {
    return this.#c.ledger.expireOverdueLeases(now)
  }

  /**
   * The renter cancels: a running job is stopped and its lease ends `terminated`/RENTER_CANCEL; a lease
   * still waiting for its job ends so at once. Throws JobError LEASE_NOT_FOUND, or LEASE_NOT_CANCELLABLE
   * when the lease has ended or its job is being set up.
   */
  async cancel (leaseId: string, note: string): Promise<void> {
    const job = this.get(leaseId)
    if (job !== undefined) {
      this.#logger.info({ leaseId: job.leaseId, note }, 'renter cancelled the job')
      await job.stop('RENTER_CANCEL')
      return
    }
    const lease = this.#c.ledger.getLease(leaseId)
    if (lease === null) throw new JobError('LEASE_NOT_FOUND', `no lease ${leaseId}`)
    if (lease.state !== 'accepted' || this.starting(lease.leaseId)) throw new JobError('LEASE_NOT_CANCELLABLE', `the lease is ${lease.state}`)
    this.#c.ledger.transitionLease(lease.leaseId, 'terminated', 'RENTER_CANCEL', { note })
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
    const key = lease.leaseId.toLowerCase()
    if (this.#jobs.has(key) || this.#starting.has(key)) throw new JobError('JOB_EXISTS', `lease ${leaseId} already has a job`)
    if (runner.kind === 'docker' && (spec.image === null || spec.image === '')) throw new JobError('BAD_SPEC', 'the docker runner needs an image')
    if (!(spec.maxRunTimeSec > 0)) throw new JobError('BAD_SPEC', 'maxRunTimeSec must be positive')
    this.#starting.add(key)
    try {
      return await this.#setUp(lease, runner, spec, bundle, options)
    } finally {
      this.#starting.delete(key)
    }
  }

  async #setUp (lease: LeaseRecord, runner: JobRunner, spec: JobSpec, bundle: AsyncIterable<Uint8Array> | null, options: { signal?: AbortSignal }): Promise<Job> {
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
    const events = this.#logs.fresh(lease.leaseId, join(paths.root, EVENTS_FILE))
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
   * Takes over a job that recovery re-attached to after a restart. Its event log is rebuilt from its
   * event file (same sequence numbers, numbering on; usage periods the ledger has but the file lacks
   * sent first, in order); log tailing resumes just after the last line sent; metering resumes where
   * the ledger stops.
   */
  async resume (lease: LeaseRecord, running: RunningJob): Promise<Job> {
    const lastPeriod = this.#c.ledger.lastUsagePeriod(lease.leaseId)?.endOffsetMs ?? 0
    const lastSample = this.#c.ledger.lastSample(lease.leaseId)?.offsetMs ?? 0
    const { log, state } = await this.#logs.resumed(lease, running.paths.root)
    return this.#track(lease, running, log, Math.max(lastPeriod, lastSample), {
      stdout: state.logEnd.stdout, stderr: state.logEnd.stderr, checkpoints: state.checkpoints
    })
  }

  /**
   * The event log of a lease whose job ended (before or after this daemon started): what a renter
   * attaching after the end replays (see `EventLogRebuilder.ended`). Null when the lease never ran a
   * job or is not ended.
   */
  async endedEvents (leaseId: string): Promise<JobEventLog | null> {
    return await this.#logs.ended(leaseId)
  }

  /** Checks and stores a voucher; clears the payment deadlines it covers. Throws VoucherRefusedError. */
  acceptVoucher (leaseId: string, voucher: Voucher): AcceptedVoucher {
    const accepted = acceptVoucher(this.#c.ledger, voucher, leaseId)
    this.get(leaseId)?.paid(accepted.cumulativeAmount)
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
    const job: Job = new Job(lease, running, events, {
      clock,
      meter: { ledger: this.#c.ledger, clock, sampleGpus: this.#c.sampleGpus, logger: this.#logger }
    }, {
      paymentKey: this.#c.paymentKey,
      resumeOffsetMs,
      ...(this.#o.sampleIntervalMs > 0 ? { sampleIntervalMs: this.#o.sampleIntervalMs } : {}),
      logPollMs: this.#o.logPollMs,
      tailFrom
    }, {
      period: () => { this.#checkEscrow(job, lease) },
      ended: (outcome, detail) => {
        this.#endLease(outcome.leaseId, outcome.state, outcome.reason, detail, outcome.exitCode)
        this.#jobs.delete(job.leaseId)
      }
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
