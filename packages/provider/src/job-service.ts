import { existsSync } from 'node:fs'
import { handleFrameStreams, within, type FrameStream, type FrameStreamContext, type StreamHost } from '@gpumesh/net'
import { JOB_MAX_FRAME_BYTES, JOB_PROTOCOL, decodeMessage, encodeArtifactsHeader, marketDomain, verifyTerminate } from '@gpumesh/protocol'
import type { ArtifactsRequest, JobAttach, JobReplyCode, JobSubmit, Terminate } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import type { Logger } from 'pino'
import { jobPaths, type Job, type JobEventLog, type JobManager } from './jobs/index.js'
import type { Clock } from '@gpumesh/protocol'
import { sendArtifacts } from './job-protocol/artifacts-download.js'
import { authorizeJob, authorizeRenter } from './job-protocol/authorize.js'
import { BundleUpload } from './job-protocol/bundle-upload.js'
import { streamEvents } from './job-protocol/event-stream.js'
import { Refusal, refusalOf } from './job-protocol/refusal.js'
import { readRenterMessages } from './job-protocol/renter-messages.js'
import { reply, respond, serialSender, type Send } from './job-protocol/wire.js'

/** Defaults of the job protocol service (milliseconds unless named otherwise). */
export const JOB_SERVICE_DEFAULTS = {
  /** A peer that opens a stream must send its request within this. */
  firstFrameTimeoutMs: 10_000,
  /** Each bundle frame must arrive within this of the previous one. */
  bundleFrameTimeoutMs: 30_000,
  /** A send the renter does not drain within this ends the stream (it can attach again). */
  sendTimeoutMs: 30_000,
  /** A keep-alive reply is sent when nothing else was sent for this long (below net's 30 s idle default). */
  keepAliveMs: 10_000,
  /** After the job's last event, how long the provider waits for the renter's final voucher. */
  finalVoucherWaitMs: 10_000,
  /** Live events queued for one slow renter before its stream is dropped (it can attach again). */
  maxQueuedEvents: 5_000,
  /** Frames in the event loop that are neither vouchers nor terminates before the stream is dropped. */
  maxBadFrames: 16,
  maxInboundStreams: 32
} as const

export interface JobServiceOptions {
  chainId: bigint
  /** runner.kind is not `none`. */
  runnerEnabled: boolean
  /** runner.maxBundleBytes. */
  maxBundleBytes: number
  /** `<dataDir>/jobs`, as given to the JobManager. */
  jobsDir: string
  /** runner.artifactRetentionSec. */
  artifactRetentionSec: number
  firstFrameTimeoutMs?: number
  bundleFrameTimeoutMs?: number
  sendTimeoutMs?: number
  keepAliveMs?: number
  finalVoucherWaitMs?: number
  maxQueuedEvents?: number
}

export interface JobServiceComponents {
  node: StreamHost & { unhandle: (protocol: string) => Promise<void> }
  ledger: Ledger
  jobs: JobManager
  clock: Pick<Clock, 'now'>
  logger: Logger
  onError?: (message: string) => void
}

const REQUEST_TYPES = ['job-submit', 'job-attach', 'terminate', 'artifacts-request'] as const

/**
 * `/gpumesh/job/1.0.0`: the renter of a lease starts its job (spec + bundle), follows its events and
 * pays with vouchers on the same stream, re-attaches from a sequence, cancels, and downloads the
 * artifacts. This class reads the request, checks who is asking (`job-protocol/authorize.ts`) and hands
 * the work on: running, metering, recording and ending leases are the JobManager's; the upload, the event
 * stream, the renter's messages and the artifacts download each have their file in `job-protocol/`.
 * No exception crosses the wire: every refusal is a `job-reply` with a code (`job-protocol/refusal.ts`).
 */
export class JobService {
  readonly #c: JobServiceComponents
  readonly #o: Required<JobServiceOptions>
  readonly #log: Logger
  readonly #active = new Set<AbortController>()
  #started = false

  constructor (components: JobServiceComponents, options: JobServiceOptions) {
    this.#c = components
    this.#log = components.logger
    this.#o = { ...JOB_SERVICE_DEFAULTS, ...options }
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await handleFrameStreams(this.#c.node, JOB_PROTOCOL, async (stream, ctx) => { await this.#handle(stream, ctx) }, {
      maxFrameBytes: JOB_MAX_FRAME_BYTES,
      // Reads and sends below carry their own deadlines; the event loop waits on the job, not the renter.
      idleTimeoutMs: 0,
      maxInboundStreams: JOB_SERVICE_DEFAULTS.maxInboundStreams
    })
  }

  /** Stops taking requests and ends every open job stream (jobs themselves are the JobManager's). */
  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#c.node.unhandle(JOB_PROTOCOL).catch(() => {})
    for (const controller of this.#active) controller.abort(new Refusal('SHUTTING_DOWN', 'the provider is stopping'))
    this.#active.clear()
  }

  async #handle (stream: FrameStream, ctx: FrameStreamContext): Promise<void> {
    const controller = new AbortController()
    this.#active.add(controller)
    const signal = AbortSignal.any([ctx.signal, controller.signal])
    const send = serialSender(stream, this.#o.sendTimeoutMs, signal)
    try {
      await this.#serve(stream, ctx.peerId.toString(), send, signal)
    } catch (err) {
      this.#log.debug({ err, peer: ctx.peerId.toString() }, 'job stream ended with an error')
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      this.#active.delete(controller)
    }
  }

  async #serve (stream: FrameStream, peer: string, send: Send, signal: AbortSignal): Promise<void> {
    const first = await stream.read({ signal: within(this.#o.firstFrameTimeoutMs, signal) })
    if (first === null) return
    let request: JobSubmit | JobAttach | Terminate | ArtifactsRequest
    try {
      request = decodeMessage(first, REQUEST_TYPES)
    } catch (err) {
      await send(reply('submit', 'MALFORMED', `not a job request: ${(err as Error).message}`))
      return
    }
    switch (request.type) {
      case 'job-submit': await this.#submit(request, stream, peer, send, signal); return
      case 'job-attach': await this.#attach(request, stream, peer, send, signal); return
      case 'terminate': await this.#respond(send, 'terminate', async () => { await this.#terminate(request, peer) }); return
      case 'artifacts-request': await this.#artifacts(request, peer, send, signal)
    }
  }

  async #respond (send: Send, subject: Parameters<typeof reply>[0], work: () => Promise<void>): Promise<boolean> {
    return await respond(send, subject, work, (err) => this.#asRefusal(err))
  }

  /** The refusal an error is answered with; an unexpected error is INTERNAL, and logged. */
  #asRefusal (err: unknown): Refusal {
    const refusal = refusalOf(err)
    if (refusal !== null) return refusal
    this.#log.error({ err }, 'job request failed')
    this.#c.onError?.(`job request failed: ${(err as Error).message}`)
    return new Refusal('INTERNAL', 'internal error')
  }

  async #submit (request: JobSubmit, stream: FrameStream, peer: string, send: Send, signal: AbortSignal): Promise<void> {
    let job: Job | null = null
    const ok = await this.#respond(send, 'submit', async () => {
      const lease = authorizeJob(this.#c.ledger, request.auth, peer)
      if (!this.#o.runnerEnabled) throw new Refusal('RUNNER_DISABLED', 'this provider runs no jobs')
      if (lease.state !== 'accepted' || this.#c.jobs.starting(lease.leaseId)) throw new Refusal('WRONG_STATE', `the lease is ${lease.state}`)
      if (request.bundleSize > this.#o.maxBundleBytes) {
        throw new Refusal('TOO_LARGE', `the bundle of ${request.bundleSize} bytes is over this provider's ${this.#o.maxBundleBytes}`)
      }
      const upload = new BundleUpload(stream, request.bundleSize, this.#o.bundleFrameTimeoutMs, signal)
      try {
        job = await this.#c.jobs.createJob(lease.leaseId, request.spec, upload.frames(), { signal })
      } catch (err) {
        // The upload's own failure (cut short, too slow, too long) explains the extraction error it caused.
        throw upload.refusal ?? err
      }
      this.#log.info({ leaseId: lease.leaseId, bytes: upload.received }, 'job started for its renter')
    })
    if (ok && job !== null) await this.#follow((job as Job).events, 0, stream, send, signal)
  }

  async #attach (request: JobAttach, stream: FrameStream, peer: string, send: Send, signal: AbortSignal): Promise<void> {
    let log: JobEventLog | null = null
    const ok = await this.#respond(send, 'attach', async () => {
      const lease = authorizeJob(this.#c.ledger, request.auth, peer)
      // A running job's log, or an ended one's from its event file (ended before or after this daemon started).
      log = this.#c.jobs.get(lease.leaseId)?.events ?? await this.#c.jobs.endedEvents(lease.leaseId)
      if (log === null) throw new Refusal('WRONG_STATE', `the lease is ${lease.state} and has no job to attach to`)
    })
    if (ok && log !== null) await this.#follow(log, request.fromSequence, stream, send, signal)
  }

  /** The job's events to the renter, while its vouchers and terminates are read on the same stream. */
  async #follow (log: JobEventLog, fromSequence: number, stream: FrameStream, send: Send, signal: AbortSignal): Promise<void> {
    const peer = stream.remotePeer.toString()
    const renter = async (loopSignal: AbortSignal): Promise<void> => {
      await readRenterMessages({
        stream,
        send,
        acceptVoucher: (voucher) => { this.#c.jobs.acceptVoucher(log.leaseId, voucher) },
        terminate: async (request) => { await this.#terminate(request, peer) },
        asRefusal: (err) => this.#asRefusal(err),
        maxBadFrames: JOB_SERVICE_DEFAULTS.maxBadFrames
      }, loopSignal)
    }
    await streamEvents(log, fromSequence, { send, renter }, this.#o, signal)
  }

  /** The renter cancels: checked here, done by the job manager (which owns the lease's end). */
  async #terminate (request: Terminate, peer: string): Promise<void> {
    const lease = authorizeRenter(this.#c.ledger, request.leaseId, peer, null, (l) => verifyTerminate(request, marketDomain(l.chainId)))
    await this.#c.jobs.cancel(lease.leaseId, request.reason)
  }

  async #artifacts (request: ArtifactsRequest, peer: string, send: Send, signal: AbortSignal): Promise<void> {
    const refuse = async (code: JobReplyCode, message: string): Promise<void> => {
      await send(encodeArtifactsHeader({ type: 'artifacts-header', ok: false, code, message }))
    }
    let lease: LeaseRecord
    try {
      lease = authorizeJob(this.#c.ledger, request.auth, peer)
    } catch (err) {
      const refusal = this.#asRefusal(err)
      await refuse(refusal.code, refusal.message)
      return
    }
    if (lease.state === 'accepted' || lease.state === 'running') return await refuse('NOT_FINISHED', `the job's lease is ${lease.state}`)
    if (lease.startedAt === null) return await refuse('WRONG_STATE', `the lease is ${lease.state}; no job ran`)
    const paths = jobPaths(this.#o.jobsDir, lease.leaseId)
    const expired = (lease.endedAt ?? 0) + this.#o.artifactRetentionSec * 1000 <= this.#c.clock.now()
    if (expired || !existsSync(paths.root)) return await refuse('EXPIRED_ARTIFACTS', 'the artifacts were removed after the retention time')
    const size = await sendArtifacts(this.#c.jobs.artifacts(lease.leaseId), paths.root, send, signal)
    this.#log.info({ leaseId: lease.leaseId, bytes: size }, 'artifacts sent')
  }
}
