import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { once } from 'node:events'
import type { Wallet } from 'ethers'
import { FrameStreamError, multiaddr, openFrameStream, within, type FrameStream, type GpumeshNode, type Multiaddr } from '@gpumesh/net'
import {
  CodedError, JOB_DATA_FRAME_BYTES, JOB_MAX_FRAME_BYTES, JOB_PROTOCOL, ProtocolError, decodeMessage, encodeArtifactsRequest, encodeJobAttach,
  encodeJobSubmit, encodeTerminate, encodeVoucher, paymentKeyAddress, signJobAuth, signTerminate, signVoucher, systemClock,
  type Clock, type Eip712Domain, type JobAuth, type JobEvent, type JobReply, type JobSpec, type LeaseTerms, type PaymentKey, type Voucher
} from '@gpumesh/protocol'
import { PaymentPolicy, ReportRefusedError } from './payment-policy.js'

/** Defaults of the job client (milliseconds). */
export const JOB_CLIENT_DEFAULTS = {
  /** Dialling and opening the stream. */
  openTimeoutMs: 30_000,
  /** Longest silence on an open job stream (the provider sends a keep-alive every 10 s). */
  idleTimeoutMs: 45_000,
  /** From the last bundle byte to the provider's answer (extraction, hash check, spawn). */
  startTimeoutMs: 120_000,
  /** One bundle frame accepted by the provider (it extracts as it reads). */
  sendTimeoutMs: 60_000,
  /** A cancel is answered once the job stopped (the provider's stop grace included). */
  cancelTimeoutMs: 120_000,
  /** After the job's last event, how long to wait for the provider to acknowledge the final voucher. */
  finalAckWaitMs: 5_000
} as const

/** Remote refusal codes (see the protocol README) and local ones: DIAL_FAILED, TIMEOUT, ABORTED, STREAM_RESET, CLOSED, PROTOCOL_ERROR, WRONG_PROVIDER, BUNDLE_SIZE_MISMATCH, ARTIFACTS_CORRUPT, NO_ADDRESS. */
export class JobClientError extends CodedError<string> {
  static override readonly name = 'JobClientError'
  /** True when the provider answered with this code (a refusal), false for local and transport failures. */
  readonly remote: boolean
  readonly retryable: boolean

  constructor (code: string, message: string, options: ErrorOptions & { remote?: boolean, retryable?: boolean } = {}) {
    super(code, message, options)
    this.remote = options.remote ?? false
    this.retryable = options.retryable ?? false
  }
}

export interface JobClientOptions {
  node: GpumeshNode
  /** The renter's payment key (the lease's `renter`). */
  wallet: Wallet | PaymentKey
  terms: LeaseTerms
  /** Vouchers: `{ chainId, verifyingContract: escrow or zero address }`. */
  settlementDomain: Eip712Domain
  /** Job auth, terminate, and the provider's usage reports: `marketDomain(chainId)`. */
  marketDomain: Eip712Domain
  /** Most this lease may cost; reports beyond it are not paid (the provider then stops the job UNPAID). */
  budget: bigint
  signal?: AbortSignal
  onEvent?: (e: JobEvent) => void
  /** A voucher was signed and sent (what the renter now owes at most). */
  onVoucher?: (v: { cumulativeAmount: bigint, sequence: bigint }) => void
  onUploadProgress?: (sentBytes: number, totalBytes: number) => void
  /** Default: Date.now and performance.now. */
  clock?: Clock
  /** Overrides of {@link JOB_CLIENT_DEFAULTS}. */
  timeouts?: Partial<Record<keyof typeof JOB_CLIENT_DEFAULTS, number>>
  /** Slack of the payment policy between the provider's billed time and the renter's clock. */
  clockToleranceMs?: number
}

/** How a job ended, as the renter saw it. */
export interface JobFollowResult {
  state: 'completed' | 'failed' | 'terminated'
  exitCode: number | null
  /** Cumulative amount of the newest voucher signed and sent. */
  paid: bigint
  /** Sequence of the last event seen. */
  lastSequence: number
  /** The provider's reason for a terminated job: UNPAID, RENTER_CANCEL, MAX_RUNTIME, PROVIDER_SHUTDOWN, ... */
  reason?: string
  /** Set when this client stopped paying because a report failed its policy (BUDGET_SPENT, AHEAD_OF_CLOCK, ...). */
  paymentStopped?: { code: string, message: string }
  /** The provider's newest refusal of a voucher, if any (its voucher check code). */
  voucherRefused?: { code: string, message: string }
}

type CancelOptions = Pick<JobClientOptions, 'node' | 'wallet' | 'terms' | 'marketDomain' | 'signal'> & { reason?: string, timeouts?: JobClientOptions['timeouts'] }
type DownloadOptions = Pick<JobClientOptions, 'node' | 'wallet' | 'terms' | 'marketDomain' | 'signal'> & { destFile: string, timeouts?: JobClientOptions['timeouts'], maxBytes?: number }

const timeoutOf = (o: { timeouts?: JobClientOptions['timeouts'] | undefined }, key: keyof typeof JOB_CLIENT_DEFAULTS): number =>
  o.timeouts?.[key] ?? JOB_CLIENT_DEFAULTS[key]

/** The provider's addresses, each ending in /p2p/<providerPeerId>; addresses of other peers are skipped. */
export function providerTargets (terms: LeaseTerms): Multiaddr[] {
  const targets: Multiaddr[] = []
  for (const text of terms.providerAddresses) {
    let ma: Multiaddr
    try { ma = multiaddr(text) } catch { continue }
    const peer = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
    if (peer === undefined) targets.push(ma.encapsulate(`/p2p/${terms.providerPeerId}`))
    else if (peer === terms.providerPeerId) targets.push(ma)
  }
  if (targets.length === 0) targets.push(multiaddr(`/p2p/${terms.providerPeerId}`))
  return targets
}

function toClientError (err: unknown, signal: AbortSignal | undefined, what: string): JobClientError {
  if (err instanceof JobClientError) return err
  if (signal?.aborted === true) return new JobClientError('ABORTED', `${what} was aborted`, { cause: err })
  if (err instanceof FrameStreamError) {
    return new JobClientError(err.code, `${what}: ${err.message}`, { cause: err, retryable: err.retryable || err.code === 'CLOSED' })
  }
  if (err instanceof ProtocolError) return new JobClientError('PROTOCOL_ERROR', `${what}: the provider sent ${err.message}`, { cause: err })
  if ((err as Error)?.name === 'TimeoutError') return new JobClientError('TIMEOUT', `${what} timed out`, { cause: err, retryable: true })
  return new JobClientError('CLOSED', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err, retryable: true })
}

async function openJobStream (o: Pick<JobClientOptions, 'node' | 'terms' | 'signal' | 'timeouts'>): Promise<FrameStream> {
  const stream = await openFrameStream(o.node, providerTargets(o.terms), JOB_PROTOCOL, {
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
    timeoutMs: timeoutOf(o, 'openTimeoutMs'),
    maxFrameBytes: JOB_MAX_FRAME_BYTES,
    // Every read and send below has its own deadline.
    idleTimeoutMs: 0
  })
  if (stream.remotePeer.toString() !== o.terms.providerPeerId) {
    stream.abort(new Error('wrong provider'))
    throw new JobClientError('WRONG_PROVIDER', `reached ${stream.remotePeer.toString()}, not the lease's provider`)
  }
  return stream
}

function jobAuth (o: Pick<JobClientOptions, 'node' | 'wallet' | 'terms' | 'marketDomain'>): JobAuth {
  const fields = { leaseId: o.terms.leaseId, peerId: o.node.peerId.toString() }
  return { ...fields, signature: signJobAuth(fields, o.wallet as PaymentKey, o.marketDomain) }
}

/** Reads frames until a `job-reply` about `subject` (keep-alives skipped). */
async function readReply (stream: FrameStream, subject: JobReply['subject'], signal: AbortSignal): Promise<JobReply> {
  for (;;) {
    const frame = await stream.read({ signal })
    if (frame === null) throw new JobClientError('CLOSED', `the provider closed the stream without answering the ${subject}`, { retryable: true })
    const message = decodeMessage(frame, ['job-reply'])
    if (message.subject === subject) return message
  }
}

const refusal = (r: JobReply): JobClientError =>
  new JobClientError(r.code ?? 'INTERNAL', `the provider refused: ${r.message ?? r.code ?? 'no reason given'}`, { remote: true })

async function * rechunk (bundle: AsyncIterable<Uint8Array> | Uint8Array): AsyncGenerator<Uint8Array> {
  const source = bundle instanceof Uint8Array ? [bundle] : bundle
  for await (const chunk of source) {
    for (let i = 0; i < chunk.byteLength; i += JOB_DATA_FRAME_BYTES) yield chunk.subarray(i, i + JOB_DATA_FRAME_BYTES)
  }
}

/**
 * Starts the lease's job: sends the spec, streams the bundle (back-pressured, never held whole), then
 * follows the job's events and pays each usage report its PaymentPolicy accepts, until the job ends.
 * A refusal throws JobClientError with the provider's code; a stream that breaks mid-job throws too
 * (attach again with the last sequence seen).
 */
export async function submitJob (o: JobClientOptions & { spec: JobSpec, bundle: AsyncIterable<Uint8Array> | Uint8Array, bundleSize: number }): Promise<JobFollowResult> {
  let stream: FrameStream | null = null
  try {
    stream = await openJobStream(o)
    const s = stream
    await s.send(encodeJobSubmit({ type: 'job-submit', auth: jobAuth(o), spec: o.spec, bundleSize: o.bundleSize }), { signal: within(timeoutOf(o, 'sendTimeoutMs'), o.signal) })
    // The answer is read while uploading: a refusal (TOO_LARGE, WRONG_STATE, ...) may come before the last byte.
    const upload = new AbortController()
    const answerWait = new AbortController()
    const answerSignal = AbortSignal.any([answerWait.signal, ...(o.signal !== undefined ? [o.signal] : [])])
    let refused: JobReply | null = null
    const answer = readReply(s, 'submit', answerSignal).then((r) => {
      if (!r.ok) { refused = r; upload.abort(refusal(r)) }
      return r
    })
    answer.catch(() => { upload.abort() })
    const uploadSignal = AbortSignal.any([upload.signal, ...(o.signal !== undefined ? [o.signal] : [])])
    let sent = 0
    try {
      for await (const chunk of rechunk(o.bundle)) {
        sent += chunk.byteLength
        if (sent > o.bundleSize) throw new JobClientError('BUNDLE_SIZE_MISMATCH', `the bundle is larger than the ${o.bundleSize} bytes announced`)
        await s.send(chunk, { signal: within(timeoutOf(o, 'sendTimeoutMs'), uploadSignal) })
        o.onUploadProgress?.(sent, o.bundleSize)
      }
      if (sent !== o.bundleSize) throw new JobClientError('BUNDLE_SIZE_MISMATCH', `the bundle has ${sent} bytes, not the ${o.bundleSize} announced`)
    } catch (err) {
      if (refused !== null) throw refusal(refused)
      answerWait.abort()
      throw err
    }
    const timer = setTimeout(() => { answerWait.abort(new JobClientError('TIMEOUT', 'the provider did not start the job in time', { retryable: true })) }, timeoutOf(o, 'startTimeoutMs'))
    let reply: JobReply
    try {
      reply = await answer
    } finally {
      clearTimeout(timer)
    }
    if (!reply.ok) throw refusal(reply)
    return await follow(s, o, 0, null)
  } catch (err) {
    const error = toClientError(err, o.signal, 'submitting the job')
    stream?.abort(error)
    throw error
  }
}

/**
 * Re-attaches to the lease's job after a broken stream: events after `fromSequence` go to `onEvent`,
 * usage reports are paid from there on (earlier ones are replayed to the payment policy only, so its
 * running totals and voucher sequence continue). `startedAt` is when this renter saw the job start
 * (Unix ms); default the provider's `started` event time.
 */
export async function attachJob (o: JobClientOptions & { fromSequence: number, startedAt?: number }): Promise<JobFollowResult> {
  let stream: FrameStream | null = null
  try {
    stream = await openJobStream(o)
    await stream.send(encodeJobAttach({ type: 'job-attach', auth: jobAuth(o), fromSequence: 0 }), { signal: within(timeoutOf(o, 'sendTimeoutMs'), o.signal) })
    const reply = await readReply(stream, 'attach', within(timeoutOf(o, 'idleTimeoutMs'), o.signal))
    if (!reply.ok) throw refusal(reply)
    return await follow(stream, o, o.fromSequence, o.startedAt ?? null)
  } catch (err) {
    const error = toClientError(err, o.signal, 'attaching to the job')
    stream?.abort(error)
    throw error
  }
}

/** Follows events, pays reports, and returns once the job's last event came (and the final voucher was acknowledged, briefly). */
async function follow (stream: FrameStream, o: JobClientOptions, fromSequence: number, startedAtWall: number | null): Promise<JobFollowResult> {
  const clock = o.clock ?? systemClock
  const policy = new PaymentPolicy({
    terms: o.terms, marketDomain: o.marketDomain, budget: o.budget,
    ...(o.clockToleranceMs !== undefined ? { clockToleranceMs: o.clockToleranceMs } : {})
  })
  const renter = paymentKeyAddress(o.wallet as PaymentKey)
  let startedMono: number | null = startedAtWall === null ? null : clock.monotonicNow() - (clock.now() - startedAtWall)
  let lastSequence = fromSequence
  let paid = 0n
  let pendingAcks = 0
  let terminal: JobEvent | null = null
  let paymentStopped: JobFollowResult['paymentStopped']
  let voucherRefused: JobFollowResult['voucherRefused']

  for (;;) {
    if (terminal !== null && pendingAcks <= 0) break
    let frame: Uint8Array | null
    try {
      frame = await stream.read({ signal: within(terminal === null ? timeoutOf(o, 'idleTimeoutMs') : timeoutOf(o, 'finalAckWaitMs'), o.signal) })
    } catch (err) {
      if (terminal !== null && o.signal?.aborted !== true) break
      throw err
    }
    if (frame === null) {
      if (terminal !== null) break
      throw new JobClientError('CLOSED', 'the provider closed the stream before the job ended', { retryable: true })
    }
    const message = decodeMessage(frame, ['job-event', 'job-reply'])
    if (message.type === 'job-reply') {
      if (message.subject === 'voucher') {
        pendingAcks--
        if (!message.ok) voucherRefused = { code: message.code ?? 'INTERNAL', message: message.message ?? '' }
      }
      continue
    }
    if (message.leaseId !== o.terms.leaseId) throw new JobClientError('PROTOCOL_ERROR', `an event of lease ${message.leaseId} on this lease's stream`)
    const replay = message.sequence <= fromSequence
    if (!replay) {
      lastSequence = Math.max(lastSequence, message.sequence)
      o.onEvent?.(message)
    }
    if (message.kind === 'started' && startedMono === null) {
      startedMono = replay ? clock.monotonicNow() - Math.max(0, clock.now() - message.at) : clock.monotonicNow()
    }
    if (message.kind === 'usage' && message.report !== undefined && paymentStopped === undefined) {
      const observedMs = startedMono === null ? 0 : clock.monotonicNow() - startedMono
      let due
      try {
        due = policy.check(message.report, observedMs)
      } catch (err) {
        if (!(err instanceof ReportRefusedError)) throw err
        // Not paying is the renter's answer: the provider stops the job (UNPAID) after its grace.
        paymentStopped = { code: err.code, message: err.message }
        continue
      }
      if (!replay && due.cumulativeAmount > paid) {
        const fields = {
          leaseId: o.terms.leaseId, provider: o.terms.provider, renter, token: o.terms.token,
          cumulativeAmount: due.cumulativeAmount, sequence: due.sequence
        }
        const voucher: Voucher = {
          type: 'voucher', ...fields, chainId: o.settlementDomain.chainId, verifyingContract: o.settlementDomain.verifyingContract,
          signature: signVoucher(fields, o.wallet as PaymentKey, o.settlementDomain)
        }
        await stream.send(encodeVoucher(voucher), { signal: within(timeoutOf(o, 'sendTimeoutMs'), o.signal) })
        pendingAcks++
        paid = due.cumulativeAmount
        o.onVoucher?.({ cumulativeAmount: due.cumulativeAmount, sequence: due.sequence })
      }
    }
    if (message.kind === 'exit' || message.kind === 'terminated') terminal = message
  }
  await stream.close({ signal: within(timeoutOf(o, 'finalAckWaitMs'), o.signal) }).catch(() => { stream.abort() })
  const end = terminal as JobEvent
  const state = end.state === 'completed' || end.state === 'failed' || end.state === 'terminated' ? end.state : 'failed'
  return {
    state,
    exitCode: end.exitCode ?? null,
    paid,
    lastSequence,
    ...(end.reason !== undefined ? { reason: end.reason } : state === 'completed' ? {} : { reason: end.exitCode == null ? 'SIGNAL' : `EXIT_${end.exitCode}` }),
    ...(paymentStopped !== undefined ? { paymentStopped } : {}),
    ...(voucherRefused !== undefined ? { voucherRefused } : {})
  }
}

/** Ends the lease's job (or a lease whose job has not started): the lease ends `terminated`/RENTER_CANCEL. */
export async function cancelJob (o: CancelOptions): Promise<void> {
  let stream: FrameStream | null = null
  try {
    stream = await openJobStream(o)
    const fields = { leaseId: o.terms.leaseId, reason: (o.reason ?? 'RENTER_CANCEL').slice(0, 256) || 'RENTER_CANCEL', at: Date.now() }
    await stream.send(encodeTerminate({ type: 'terminate', ...fields, signature: signTerminate(fields, o.wallet as PaymentKey, o.marketDomain) }),
      { signal: within(timeoutOf(o, 'sendTimeoutMs'), o.signal) })
    const reply = await readReply(stream, 'terminate', within(timeoutOf(o, 'cancelTimeoutMs'), o.signal))
    if (!reply.ok) throw refusal(reply)
    await stream.close({ signal: within(timeoutOf(o, 'finalAckWaitMs'), o.signal) }).catch(() => { stream?.abort() })
  } catch (err) {
    const error = toClientError(err, o.signal, 'cancelling the job')
    stream?.abort(error)
    throw error
  }
}

/**
 * Downloads the job's artifacts (its output and checkpoint directories) as a tar.gz to `destFile`,
 * checking the size and sha256 the provider announced. A partial or corrupt file is removed.
 */
export async function downloadArtifacts (o: DownloadOptions): Promise<{ bytes: number, sha256: string }> {
  let stream: FrameStream | null = null
  let writing = false
  try {
    stream = await openJobStream(o)
    await stream.send(encodeArtifactsRequest({ type: 'artifacts-request', auth: jobAuth(o) }), { signal: within(timeoutOf(o, 'sendTimeoutMs'), o.signal) })
    const headerFrame = await stream.read({ signal: within(timeoutOf(o, 'startTimeoutMs'), o.signal) })
    if (headerFrame === null) throw new JobClientError('CLOSED', 'the provider closed the stream without an answer', { retryable: true })
    const header = decodeMessage(headerFrame, ['artifacts-header'])
    if (!header.ok) throw new JobClientError(header.code, `the provider refused: ${header.message}`, { remote: true })
    if (o.maxBytes !== undefined && header.size > o.maxBytes) throw new JobClientError('TOO_LARGE', `the artifacts are ${header.size} bytes, over ${o.maxBytes}`)
    const hash = createHash('sha256')
    const file = createWriteStream(o.destFile, { mode: 0o600 })
    writing = true
    let received = 0
    try {
      while (received < header.size) {
        const frame = await stream.read({ signal: within(timeoutOf(o, 'idleTimeoutMs'), o.signal) })
        if (frame === null) throw new JobClientError('CLOSED', `the artifacts ended after ${received} of ${header.size} bytes`, { retryable: true })
        received += frame.byteLength
        if (received > header.size) throw new JobClientError('PROTOCOL_ERROR', `more artifact bytes than the ${header.size} announced`)
        hash.update(frame)
        if (!file.write(frame)) await once(file, 'drain', { signal: within(timeoutOf(o, 'idleTimeoutMs'), o.signal) })
      }
    } finally {
      file.end()
      await once(file, 'close').catch(() => {})
    }
    const sha256 = `0x${hash.digest('hex')}`
    if (sha256 !== header.sha256) throw new JobClientError('ARTIFACTS_CORRUPT', `the artifacts' sha256 ${sha256} is not the ${header.sha256} announced`)
    await stream.close({ signal: within(timeoutOf(o, 'finalAckWaitMs'), o.signal) }).catch(() => { stream?.abort() })
    return { bytes: received, sha256 }
  } catch (err) {
    const error = toClientError(err, o.signal, 'downloading the artifacts')
    stream?.abort(error)
    if (writing) await rm(o.destFile, { force: true })
    throw error
  }
}
