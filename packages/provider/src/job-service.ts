import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, existsSync } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { handleFrameStreams, type FrameStream, type FrameStreamContext, type StreamHost } from '@gpumesh/net'
import {
  JOB_DATA_FRAME_BYTES, JOB_MAX_FRAME_BYTES, JOB_PROTOCOL, decodeMessage, encodeArtifactsHeader, encodeJobEvent, encodeJobReply,
  marketDomain, verifyJobAuth, verifyTerminate
} from '@gpumesh/protocol'
import type { Address, ArtifactsRequest, Bytes32, JobAttach, JobEvent, JobReply, JobReplyCode, JobSubmit, Terminate } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import type { Logger } from 'pino'
import { BundleError, JobError, VoucherRefusedError, jobPaths, type Job, type JobEventLog, type JobManager } from './jobs/index.js'
import type { Clock } from './clock.js'

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

/** A refusal on the wire: a reply code and a sentence. */
class Refusal extends Error {
  static override readonly name = 'JobRefusal'
  override readonly name = 'JobRefusal'
  readonly code: JobReplyCode
  constructor (code: JobReplyCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

type Send = (bytes: Uint8Array) => Promise<void>

const reply = (subject: JobReply['subject'], code: string | null = null, message: string | null = null): Uint8Array =>
  encodeJobReply({ type: 'job-reply', subject, ok: code === null, code, message: message === null ? null : message.slice(0, 1024) })

const REQUEST_TYPES = ['job-submit', 'job-attach', 'terminate', 'artifacts-request'] as const
const LOOP_TYPES = ['voucher', 'terminate'] as const

function within (ms: number, signal: AbortSignal): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms)])
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/**
 * `/gpumesh/job/1.0.0`: the renter of a lease starts its job (spec + bundle), follows its events and
 * pays with vouchers on the same stream, re-attaches from a sequence, cancels, and downloads the
 * artifacts. Everything about running, metering and recording is the JobManager's; this class checks
 * who is asking, moves bytes, and never lets an exception cross the wire (every refusal is a
 * `job-reply` with a code).
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
    // One frame at a time on the wire, whoever sends it (event writer, voucher replies).
    let tail: Promise<void> = Promise.resolve()
    const send: Send = async (bytes) => {
      const next = tail.then(async () => { await stream.send(bytes, { signal: within(this.#o.sendTimeoutMs, signal) }) })
      tail = next.catch(() => {})
      await next
    }
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

  /** Runs `work`, then answers ok, or the refusal's code (an unexpected error is INTERNAL, logged). */
  async #respond (send: Send, subject: JobReply['subject'], work: () => Promise<void>): Promise<boolean> {
    try {
      await work()
    } catch (err) {
      const refusal = this.#asRefusal(err)
      await send(reply(subject, refusal.code, refusal.message))
      return false
    }
    await send(reply(subject))
    return true
  }

  #asRefusal (err: unknown): Refusal {
    if (err instanceof Refusal) return err
    this.#log.error({ err }, 'job request failed')
    this.#c.onError?.(`job request failed: ${(err as Error).message}`)
    return new Refusal('INTERNAL', 'internal error')
  }

  /** The lease, if `signer` is its renter and the stream and the claim come from its renter peer. */
  #authorize (leaseId: string, peer: string, claimedPeerId: string | null, verify: (lease: LeaseRecord) => Address): LeaseRecord {
    const lease = this.#c.ledger.getLease(leaseId)
    if (lease === null) throw new Refusal('NO_SUCH_LEASE', `no lease ${leaseId}`)
    let signer: Address
    try {
      signer = verify(lease)
    } catch (err) {
      throw new Refusal('BAD_AUTH', 'the signature does not verify', { cause: err })
    }
    if (!same(signer, lease.renter)) throw new Refusal('NOT_RENTER', 'signed by a key other than the lease\'s renter')
    if (peer !== lease.renterPeerId || (claimedPeerId !== null && claimedPeerId !== lease.renterPeerId)) {
      throw new Refusal('NOT_RENTER', 'only the lease\'s renter peer may do this')
    }
    return lease
  }

  #authorizeJob (auth: JobSubmit['auth'], peer: string): LeaseRecord {
    return this.#authorize(auth.leaseId, peer, auth.peerId, (lease) => verifyJobAuth(auth, marketDomain(lease.chainId)))
  }

  async #submit (request: JobSubmit, stream: FrameStream, peer: string, send: Send, signal: AbortSignal): Promise<void> {
    let job: Job | null = null
    const ok = await this.#respond(send, 'submit', async () => {
      const lease = this.#authorizeJob(request.auth, peer)
      if (!this.#o.runnerEnabled) throw new Refusal('RUNNER_DISABLED', 'this provider runs no jobs')
      if (lease.state !== 'accepted' || this.#c.jobs.starting(lease.leaseId)) throw new Refusal('WRONG_STATE', `the lease is ${lease.state}`)
      if (request.bundleSize > this.#o.maxBundleBytes) {
        throw new Refusal('TOO_LARGE', `the bundle of ${request.bundleSize} bytes is over this provider's ${this.#o.maxBundleBytes}`)
      }
      job = await this.#receiveAndStart(lease, request, stream, signal)
    })
    if (ok && job !== null) await this.#eventLoop(stream, send, (job as Job).leaseId, (job as Job).events, 0, signal)
  }

  async #receiveAndStart (lease: LeaseRecord, request: JobSubmit, stream: FrameStream, signal: AbortSignal): Promise<Job> {
    const total = request.bundleSize
    let received = 0
    let uploadError: Refusal | null = null
    const bundleTimeout = this.#o.bundleFrameTimeoutMs
    const bundle = async function * (): AsyncGenerator<Uint8Array> {
      while (received < total) {
        let frame: Uint8Array | null
        try {
          frame = await stream.read({ signal: within(bundleTimeout, signal) })
        } catch (err) {
          uploadError = signal.aborted
            ? new Refusal('SHUTTING_DOWN', 'the upload was cut short', { cause: err })
            : new Refusal('TIMEOUT', 'the bundle stopped arriving', { cause: err })
          throw uploadError
        }
        if (frame === null) throw (uploadError = new Refusal('MALFORMED', `the bundle ended after ${received} of ${total} bytes`))
        received += frame.byteLength
        if (received > total) throw (uploadError = new Refusal('TOO_LARGE', `more bundle bytes than the ${total} announced`))
        yield frame
      }
    }
    try {
      const job = await this.#c.jobs.createJob(lease.leaseId, request.spec, bundle(), { signal })
      this.#log.info({ leaseId: lease.leaseId, bytes: received }, 'job started for its renter')
      return job
    } catch (err) {
      if (uploadError !== null) throw uploadError
      if (err instanceof JobError) {
        const code: JobReplyCode = ({
          RUNNER_DISABLED: 'RUNNER_DISABLED', LEASE_NOT_FOUND: 'NO_SUCH_LEASE', LEASE_NOT_STARTABLE: 'WRONG_STATE', JOB_EXISTS: 'WRONG_STATE',
          BUNDLE_HASH_MISMATCH: 'HASH_MISMATCH', BAD_SPEC: 'BAD_SPEC', SPAWN_FAILED: 'SPAWN_FAILED', STOPPED: 'SHUTTING_DOWN', JOB_NOT_FOUND: 'INTERNAL',
          RUNNER_FAILED: 'SPAWN_FAILED', IMAGE_UNAVAILABLE: 'IMAGE_UNAVAILABLE', LEASE_NOT_CANCELLABLE: 'WRONG_STATE'
        } as const)[err.code]
        throw new Refusal(code, err.message, { cause: err })
      }
      if (err instanceof BundleError) {
        const code: JobReplyCode = err.code === 'COMPRESSED_TOO_LARGE' || err.code === 'UNCOMPRESSED_TOO_LARGE'
          ? 'TOO_LARGE'
          : err.code === 'ABORTED' ? 'SHUTTING_DOWN' : 'BAD_BUNDLE'
        throw new Refusal(code, err.message, { cause: err })
      }
      throw err
    }
  }

  async #attach (request: JobAttach, stream: FrameStream, peer: string, send: Send, signal: AbortSignal): Promise<void> {
    let log: JobEventLog | null = null
    const ok = await this.#respond(send, 'attach', async () => {
      const lease = this.#authorizeJob(request.auth, peer)
      // A running job's log, or an ended one's from its event file (ended before or after this daemon started).
      log = this.#c.jobs.get(lease.leaseId)?.events ?? await this.#c.jobs.endedEvents(lease.leaseId)
      if (log === null) throw new Refusal('WRONG_STATE', `the lease is ${lease.state} and has no job to attach to`)
    })
    if (!ok || log === null) return
    const events = log as JobEventLog
    await this.#eventLoop(stream, send, events.leaseId, events, request.fromSequence, signal)
  }

  /**
   * Streams a job's events after `fromSequence` (history first, from memory or the job's event file,
   * paced by the renter) and takes vouchers and terminates on the same stream, until the job's last
   * event was sent and its final voucher came (or did not, in time), or the renter went away.
   */
  async #eventLoop (stream: FrameStream, send: Send, leaseId: Bytes32, log: JobEventLog, fromSequence: number, signal: AbortSignal): Promise<void> {
    const queue: JobEvent[] = []
    let overflow = false
    let wake: (() => void) | null = null
    const poke = (): void => { const w = wake; wake = null; w?.() }
    // Live events from here on are queued while the history up to here is sent.
    const replayTo = log.lastSequence
    const unsubscribe = log.listen((event) => {
      if (queue.length >= this.#o.maxQueuedEvents) overflow = true
      else queue.push(event)
      poke()
    })
    const loop = new AbortController()
    const loopSignal = AbortSignal.any([signal, loop.signal])
    let readerDone = false
    const reader = this.#readLoop(stream, send, leaseId, loopSignal).finally(() => { readerDone = true; poke() })
    try {
      let terminal = false
      let sinceSend = 0
      for await (const event of log.read(fromSequence, replayTo, loopSignal)) {
        if (readerDone) break
        await send(encodeJobEvent(event))
        terminal = event.kind === 'exit' || event.kind === 'terminated'
        if (terminal) break
      }
      // A renter that has seen everything of an ended job is told again how it ended.
      if (!terminal && !readerDone && log.ended && queue.length === 0) {
        await send(encodeJobEvent(log.last as JobEvent))
        terminal = true
      }
      while (!signal.aborted && !terminal) {
        while (queue.length > 0 && !terminal) {
          const event = queue.shift() as JobEvent
          if (event.sequence <= fromSequence) continue
          await send(encodeJobEvent(event))
          sinceSend = 0
          terminal = event.kind === 'exit' || event.kind === 'terminated'
        }
        if (overflow) throw new Error('the renter reads events too slowly; dropped (it can attach again)')
        if (terminal || readerDone) break
        const waited = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => { wake = null; resolve(true) }, this.#o.keepAliveMs - sinceSend)
          wake = () => { clearTimeout(timer); resolve(false) }
          if (signal.aborted) wake()
        })
        if (waited) {
          await send(reply('keepalive'))
          sinceSend = 0
        }
      }
      if (terminal) {
        // The renter pays the final report, then closes its side; wait for that, briefly.
        await Promise.race([reader, new Promise((resolve) => { setTimeout(resolve, this.#o.finalVoucherWaitMs).unref() })])
      }
    } finally {
      unsubscribe()
      loop.abort()
      await reader.catch(() => {})
    }
  }

  /** Vouchers and terminates from the renter during the event loop. Ends when the renter closes its side. */
  async #readLoop (stream: FrameStream, send: Send, leaseId: Bytes32, signal: AbortSignal): Promise<void> {
    let bad = 0
    for (;;) {
      // No deadline here: a silent renter is the meter's business (no voucher within grace ⇒ UNPAID).
      const frame = await stream.read({ signal })
      if (frame === null) return
      let message
      try {
        message = decodeMessage(frame, LOOP_TYPES)
      } catch (err) {
        await send(reply('voucher', 'MALFORMED', `expected a voucher or a terminate: ${(err as Error).message}`))
        if (++bad >= JOB_SERVICE_DEFAULTS.maxBadFrames) throw new Error('too many bad frames')
        continue
      }
      if (message.type === 'terminate') {
        const peer = stream.remotePeer.toString()
        await this.#respond(send, 'terminate', async () => { await this.#terminate(message, peer) })
        continue
      }
      try {
        this.#c.jobs.acceptVoucher(leaseId, message)
        await send(reply('voucher'))
      } catch (err) {
        if (err instanceof VoucherRefusedError) {
          await send(reply('voucher', err.code, err.message))
        } else {
          const refusal = this.#asRefusal(err)
          await send(reply('voucher', refusal.code, refusal.message))
        }
      }
    }
  }

  async #terminate (request: Terminate, peer: string): Promise<void> {
    const lease = this.#authorize(request.leaseId, peer, null, (l) => verifyTerminate(request, marketDomain(l.chainId)))
    try {
      await this.#c.jobs.cancel(lease.leaseId, request.reason)
    } catch (err) {
      if (err instanceof JobError && err.code === 'LEASE_NOT_CANCELLABLE') throw new Refusal('WRONG_STATE', err.message, { cause: err })
      throw err
    }
  }

  async #artifacts (request: ArtifactsRequest, peer: string, send: Send, signal: AbortSignal): Promise<void> {
    const refuse = async (code: JobReplyCode, message: string): Promise<void> => {
      await send(encodeArtifactsHeader({ type: 'artifacts-header', ok: false, code, message }))
    }
    let lease: LeaseRecord
    try {
      lease = this.#authorizeJob(request.auth, peer)
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

    // Packed to a file first: the header carries the size and sha256, and the renter can verify both.
    const file = join(paths.root, `.artifacts-${randomBytes(6).toString('hex')}.tar.gz`)
    try {
      const hash = createHash('sha256')
      const tap = new Transform({ transform (chunk: Buffer, _enc, done) { hash.update(chunk); done(null, chunk) } })
      await pipeline(this.#c.jobs.artifacts(lease.leaseId), tap, createWriteStream(file, { mode: 0o600 }), { signal })
      const size = (await stat(file)).size
      await send(encodeArtifactsHeader({ type: 'artifacts-header', ok: true, size, sha256: `0x${hash.digest('hex')}` }))
      for await (const chunk of createReadStream(file, { highWaterMark: JOB_DATA_FRAME_BYTES, signal })) {
        await send(chunk as Buffer)
      }
      this.#log.info({ leaseId: lease.leaseId, bytes: size }, 'artifacts sent')
    } finally {
      await rm(file, { force: true })
    }
  }
}
