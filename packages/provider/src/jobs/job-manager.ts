import { rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Readable } from 'node:stream'
import type { Address, Bytes32, JobSpec, PaymentKey, SignedUsageReport, Voucher } from '@gpumesh/protocol'
import { ZERO_ADDRESS } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import { artifactStream, cleanupArtifacts } from './artifacts.js'
import { extractBundle } from './bundle.js'
import { BundleError, JobError } from './errors.js'
import { JobEventLog, type JobEventListener, type JobOutcome } from './job.js'
import { jobPaths, makeJobDirs, type JobPaths } from './job-dir.js'
import { JobLogTailer } from './log-tailer.js'
import { LeaseMeter } from './meter.js'
import type { GpuVendorKind, JobExit, JobRunner, RunningJob } from './runner.js'
import { silentLogger, type Clock, type JobsLogger, type SampleGpus } from './types.js'
import { acceptVoucher, type AcceptedVoucher } from './voucher.js'

export interface JobManagerComponents {
  ledger: Ledger
  /** Null when `runner.kind` is `none`: no job is accepted. */
  runner: JobRunner | null
  clock: Clock
  sampleGpus: SampleGpus
  /** The provider's payment key: signs usage reports (market domain). */
  paymentKey: PaymentKey
  logger?: JobsLogger
}

export interface JobManagerOptions {
  /** Where job directories live: `<dataDir>/jobs`. */
  jobsDir: string
  /**
   * The escrow contract, or the zero address off-chain (default): the settlement domain vouchers are
   * checked under. Usage reports are signed under the market domain, whatever this is.
   */
  verifyingContract?: Address
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
}

/** Lease-ending reasons the job side writes. */
export type TerminationReason = 'UNPAID' | 'RENTER_CANCEL' | 'MAX_RUNTIME' | 'PROVIDER_SHUTDOWN' | (string & {})

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
  }
  get stopReason (): TerminationReason | null { return this.#stopReason }
  get meter (): LeaseMeter { return this.#meter }
  get tailer (): JobLogTailer { return this.#tailer }

  /** Subscribe from a sequence number (0: everything still held); returns the unsubscribe function. */
  subscribe (fromSequence: number, listener: JobEventListener): () => void {
    return this.events.subscribe(fromSequence, listener)
  }

  /** SIGTERM, grace, SIGKILL; the lease ends `terminated` with `reason`. Resolves when it has. */
  async stop (reason: TerminationReason, graceMs?: number): Promise<JobOutcome> {
    this.#stopReason ??= reason
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
  #controller: AbortController | null = null

  constructor (components: JobManagerComponents, options: JobManagerOptions) {
    this.#c = components
    this.#logger = components.logger ?? silentLogger
    this.#o = {
      verifyingContract: ZERO_ADDRESS,
      maxBundleUncompressedBytes: options.maxBundleBytes * 4,
      logPollMs: 200,
      sampleIntervalMs: 0,
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

    let running: RunningJob
    try {
      running = await runner.start({
        leaseId: lease.leaseId, paths, gpus: lease.gpus, vendor: this.#vendorOf(lease.gpus), spec,
        maxRunTimeMs: spec.maxRunTimeSec * 1000
      })
    } catch (err) {
      return fail('SPAWN_FAILED', err)
    }
    const started = this.#c.ledger.transitionLease(lease.leaseId, 'running', 'JOB_STARTED', { pid: running.pid, runner: runner.kind })
    this.#c.ledger.setLeaseJob(lease.leaseId, { pid: running.pid, pidStartTime: running.pidStartTime, jobDir: paths.root })
    return this.#track(started, running, 0)
  }

  /** Takes over a job that recovery re-attached to after a restart. Metering resumes where the ledger stops. */
  resume (lease: LeaseRecord, running: RunningJob): Job {
    const lastPeriod = this.#c.ledger.lastUsagePeriod(lease.leaseId)?.endOffsetMs ?? 0
    const lastSample = this.#c.ledger.lastSample(lease.leaseId)?.offsetMs ?? 0
    return this.#track(lease, running, Math.max(lastPeriod, lastSample))
  }

  /** Checks and stores a voucher; clears the payment deadlines it covers. Throws VoucherRefusedError. */
  acceptVoucher (leaseId: string, voucher: Voucher): AcceptedVoucher {
    const accepted = acceptVoucher(this.#c.ledger, voucher, this.#o.verifyingContract, leaseId)
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
    const vendors = new Set(this.#c.ledger.listGpus().filter((g) => gpus.includes(g.uuid)).map((g) => g.vendor))
    if (vendors.has('amd')) return 'amd'
    if (vendors.has('nvidia')) return 'nvidia'
    return 'simulated'
  }

  #track (lease: LeaseRecord, running: RunningJob, resumeOffsetMs: number): Job {
    const { clock } = this.#c
    const events = new JobEventLog(lease.leaseId)
    events.append(clock.now(), { kind: 'started' })
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
          onReport: (report: SignedUsageReport) => { events.append(clock.now(), { kind: 'usage', report }) },
          onUnpaid: () => { void j.stop('UNPAID') },
          onDurationReached: () => { void j.stop('MAX_RUNTIME') }
        }),
      tailer: (_j) => new JobLogTailer(running.paths, {
        line: (stream, text) => { events.append(clock.now(), { kind: 'log', stream, text }) },
        checkpoint: (name) => { events.append(clock.now(), { kind: 'checkpoint', text: name }) }
      }, this.#o.logPollMs),
      finish: async (j, exit) => await this.#finish(j, exit)
    })
    this.#jobs.set(lease.leaseId, job)
    this.#logger.info({ leaseId: lease.leaseId, pid: running.pid }, 'job running')
    return job
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
    this.#endLease(job.leaseId, state, reason, { exitCode: exit.exitCode, signal: exit.signal }, exit.exitCode)
    if (state === 'terminated') {
      job.events.append(clock.now(), { kind: 'terminated', state, reason })
    } else {
      job.events.append(clock.now(), { kind: 'exit', exitCode: exit.exitCode, state })
    }
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
