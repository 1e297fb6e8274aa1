import { logger } from '@libp2p/logger'
import {
  DEFAULT_HANDLER_TIMEOUT_MS,
  DEFAULT_MAX_CONCURRENT_REQUESTS,
  DEFAULT_MAX_INBOUND_STREAMS,
  DEFAULT_MAX_OUTBOUND_STREAMS,
  DEFAULT_MAX_REQUEST_BYTES,
  DEFAULT_MAX_RESPONSE_BYTES,
  DEFAULT_RATE_LIMIT_DURATION_MS,
  DEFAULT_RATE_LIMIT_POINTS,
  DEFAULT_REQUEST_TIMEOUT_MS
} from './constants.js'
import { deadline, raceSignal } from './deadline.js'
import { FrameStreamError, HandlerError, RequestError } from './errors.js'
import { decodeEnvelope, encodeErrorEnvelope, encodeOkEnvelope } from './frame-codec.js'
import { FrameReader } from './frame-reader.js'
import { writeFrame } from './frame-writer.js'
import { PeerRateLimiter } from './rate-limiter.js'
import { gateFor } from './request-gate.js'
import type { Deadline } from './deadline.js'
import type { RemoteErrorCode } from './errors.js'
import type { RateLimitOptions } from './rate-limiter.js'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Uint8ArrayList } from 'uint8arraylist'

const log = logger('gpumesh:net:reqres')

/** Where a request goes: a peer id the node can find addresses for, or addresses to dial. */
export type RequestTarget = PeerId | Multiaddr | Multiaddr[]

/** The part of a libp2p node the request/response helpers use. */
export type StreamHost = Pick<Libp2p, 'handle' | 'unhandle' | 'dial' | 'dialProtocol'>

export interface RequestContext {
  /** The authenticated remote peer (noise proved it holds the key). */
  peerId: PeerId
  connection: Connection
  /** Aborts when the handler's deadline passes or the stream dies; pass it to any I/O. */
  signal: AbortSignal
}

/** Answers one request. Throw `HandlerError` to answer with your own reason code. */
export type RequestHandler = (request: Uint8Array, context: RequestContext) => Promise<Uint8Array>

export interface HandleOptions {
  /** Largest request accepted; a larger one is answered `TOO_LARGE` unread. */
  maxRequestBytes?: number
  /** Largest response the handler may return; a larger one is answered `INTERNAL`. */
  maxResponseBytes?: number
  /** Time for the peer to send its request plus for the handler to answer it. */
  timeoutMs?: number
  /** Streams of this protocol open at once per connection; more are reset by libp2p. */
  maxInboundStreams?: number
  maxOutboundStreams?: number
  /** Requests per peer per window; more are answered `RATE_LIMITED`. */
  rateLimit?: RateLimitOptions
  /** Replace a handler already registered for the protocol. */
  force?: boolean
}

export interface RequestOptions {
  signal?: AbortSignal
  /** Deadline of the whole exchange, dial included. */
  timeoutMs?: number
  /** Largest response accepted; a larger one fails with `TOO_LARGE`. */
  maxResponseBytes?: number
  /**
   * Requests this node keeps in flight to one peer on one protocol; more wait their turn (within
   * their deadline) instead of being reset by the remote's inbound stream cap.
   */
  maxConcurrent?: number
}

/**
 * Registers `handler` for `protocol`. Each stream carries one request frame and one response frame
 * (see README, "Frame format"). The handler never throws across the wire: every failure becomes an
 * error envelope with a reason code, and the stream is always closed or aborted.
 */
export async function handle (node: StreamHost, protocol: string, handler: RequestHandler, options: HandleOptions = {}): Promise<void> {
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS
  const limiter = new PeerRateLimiter(options.rateLimit ?? { points: DEFAULT_RATE_LIMIT_POINTS, durationMs: DEFAULT_RATE_LIMIT_DURATION_MS })

  await node.handle(protocol, async (stream, connection) => {
    await serveRequest(stream, connection, handler, { maxRequestBytes, maxResponseBytes, timeoutMs, limiter })
  }, {
    maxInboundStreams: options.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS,
    maxOutboundStreams: options.maxOutboundStreams ?? DEFAULT_MAX_OUTBOUND_STREAMS,
    ...(options.force === true ? { force: true } : {})
  })
}

interface ServeConfig {
  maxRequestBytes: number
  maxResponseBytes: number
  timeoutMs: number
  limiter: PeerRateLimiter
}

async function serveRequest (stream: Stream, connection: Connection, handler: RequestHandler, config: ServeConfig): Promise<void> {
  const peerId = connection.remotePeer
  const limit = deadline(config.timeoutMs)
  const reader = new FrameReader(stream, { maxFrameBytes: config.maxRequestBytes, highWaterMark: 1 })
  try {
    if (!config.limiter.consume(peerId.toString())) {
      log('rate limited %p on %s', peerId, stream.protocol)
      await answer(stream, encodeErrorEnvelope('RATE_LIMITED', 'too many requests'), config.timeoutMs)
      return
    }

    let request: Uint8Array | null
    try {
      request = await reader.next({ signal: limit.signal })
    } catch (err) {
      if (err instanceof FrameStreamError && err.code === 'TOO_LARGE') {
        log('request from %p too large on %s', peerId, stream.protocol)
        await answer(stream, encodeErrorEnvelope('TOO_LARGE', `request exceeds ${config.maxRequestBytes} bytes`), config.timeoutMs)
        return
      }
      log('no request from %p on %s - %e', peerId, stream.protocol, err)
      stream.abort(toError(err))
      return
    }
    if (request == null) {
      stream.abort(new Error('stream closed before a request was sent'))
      return
    }

    let response: Uint8Array
    try {
      response = await raceSignal(handler(request, { peerId, connection, signal: limit.signal }), limit.signal)
    } catch (err) {
      await answer(stream, handlerFailure(err, limit), config.timeoutMs)
      return
    }
    if (response.byteLength > config.maxResponseBytes) {
      log.error('handler for %s returned %d bytes, over the limit of %d', stream.protocol, response.byteLength, config.maxResponseBytes)
      await answer(stream, encodeErrorEnvelope('INTERNAL', 'response too large'), config.timeoutMs)
      return
    }
    await answer(stream, encodeOkEnvelope(response), config.timeoutMs)
  } catch (err) {
    log('serving %s to %p failed - %e', stream.protocol, peerId, err)
    stream.abort(toError(err))
  } finally {
    reader.dispose()
    limit.clear()
  }
}

function handlerFailure (err: unknown, limit: Deadline): Uint8ArrayList {
  if (err instanceof HandlerError) return encodeErrorEnvelope(err.code, err.message)
  if (limit.timedOut()) return encodeErrorEnvelope('TIMEOUT', 'handler did not answer in time')
  log.error('request handler threw - %e', err)
  return encodeErrorEnvelope('INTERNAL', 'internal error')
}

/** Writes the response frame and closes our side; the client closes its own once it has read it. */
async function answer (stream: Stream, envelope: Uint8ArrayList, timeoutMs: number): Promise<void> {
  const limit = deadline(timeoutMs)
  try {
    await writeFrame(stream, envelope, { signal: limit.signal })
    await stream.close({ signal: limit.signal })
  } finally {
    limit.clear()
  }
}

/**
 * Sends `request` on a new stream and returns the response payload. Throws `RequestError`; when the
 * remote answered with an error envelope, `code` is `'REMOTE_ERROR'` and `remoteCode` says why.
 */
export async function request (node: StreamHost, target: RequestTarget, protocol: string, payload: Uint8Array | Uint8ArrayList, options: RequestOptions = {}): Promise<Uint8Array> {
  const limit = deadline(options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, options.signal)
  const { gate, forget } = gateFor(node, target, protocol, options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT_REQUESTS)
  let release: () => void
  try {
    release = await gate.acquire(limit.signal)
  } catch (err) {
    limit.clear()
    forget()
    throw toRequestError(err, options.signal, limit, 'DIAL_FAILED')
  }
  try {
    return await requestOnce(node, target, protocol, payload, options, limit)
  } finally {
    release()
    forget()
    limit.clear()
  }
}

async function requestOnce (node: StreamHost, target: RequestTarget, protocol: string, payload: Uint8Array | Uint8ArrayList, options: RequestOptions, limit: Deadline): Promise<Uint8Array> {
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
  let stream: Stream
  try {
    stream = await node.dialProtocol(target, protocol, { signal: limit.signal })
  } catch (err) {
    throw toRequestError(err, options.signal, limit, 'DIAL_FAILED')
  }

  const reader = new FrameReader(stream, { maxFrameBytes: maxResponseBytes + 1, highWaterMark: 1 })
  // The request is written while the response is awaited: a server that refuses a large request
  // answers before reading it, and the answer must not wait behind a send window it will never open.
  let writeFailure: unknown
  let writing = true
  const written = (async () => {
    await writeFrame(stream, payload, { signal: limit.signal })
    await stream.close({ signal: limit.signal })
  })().catch((err: unknown) => { writeFailure = err }).finally(() => { writing = false })

  try {
    const frame = await reader.next({ signal: limit.signal })
    if (frame == null) {
      throw new RequestError('PROTOCOL_ERROR', `${protocol} closed without a response`, { cause: writeFailure })
    }
    const envelope = decodeEnvelope(frame)
    if (envelope == null) throw new RequestError('PROTOCOL_ERROR', `${protocol} sent a malformed response`)
    if (envelope.status === 'error') {
      throw new RequestError('REMOTE_ERROR', `${protocol} answered ${envelope.code}: ${envelope.message}`, { remoteCode: envelope.code })
    }
    if (envelope.payload.byteLength > maxResponseBytes) {
      throw new RequestError('TOO_LARGE', `response exceeds ${maxResponseBytes} bytes`)
    }
    return envelope.payload
  } catch (err) {
    throw toRequestError(err, options.signal, limit, 'PROTOCOL_ERROR')
  } finally {
    reader.dispose()
    if (writing || stream.status === 'open') {
      // Either the request is still being written (the server already answered) or the server has
      // not closed; both are done with.
      stream.abort(new Error('request finished'))
    }
    await written
  }
}

/** Maps what libp2p, the reader or a signal threw to a `RequestError`. */
export function toRequestError (err: unknown, userSignal: AbortSignal | undefined, limit: Deadline, fallback: 'DIAL_FAILED' | 'PROTOCOL_ERROR'): RequestError {
  if (err instanceof RequestError) return err
  if (userSignal?.aborted === true) return new RequestError('ABORTED', 'request aborted', { cause: err })
  if (limit.timedOut()) return new RequestError('TIMEOUT', 'request timed out', { cause: err })
  if (err instanceof FrameStreamError) {
    switch (err.code) {
      case 'TOO_LARGE': return new RequestError('TOO_LARGE', err.message, { cause: err })
      case 'STREAM_RESET': return new RequestError('STREAM_RESET', err.message, { cause: err })
      case 'ABORTED': return new RequestError('ABORTED', err.message, { cause: err })
      default: return new RequestError('PROTOCOL_ERROR', err.message, { cause: err })
    }
  }
  const name = err instanceof Error ? err.name : ''
  if (name === 'UnsupportedProtocolError') return new RequestError('PROTOCOL_ERROR', 'remote does not support the protocol', { cause: err })
  if (name === 'StreamResetError' || name === 'StreamStateError' || name === 'StreamAbortedError') {
    return new RequestError('STREAM_RESET', 'stream was reset', { cause: err })
  }
  return new RequestError(fallback, err instanceof Error ? err.message : String(err), { cause: err })
}

function toError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

export type { RemoteErrorCode }
