import { logger } from '@libp2p/logger'
import {
  DEFAULT_FRAME_HIGH_WATER_MARK,
  DEFAULT_FRAME_STREAM_TIMEOUT_MS,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_INBOUND_STREAMS,
  DEFAULT_MAX_OUTBOUND_STREAMS,
  DEFAULT_RATE_LIMIT_DURATION_MS,
  DEFAULT_RATE_LIMIT_POINTS,
  PAUSED_STREAM_READ_BUFFER_BYTES
} from './constants.js'
import { deadline } from './deadline.js'
import { FrameStreamError } from './errors.js'
import { FrameReader } from './frame-reader.js'
import { writeFrame } from './frame-writer.js'
import { PeerRateLimiter } from './rate-limiter.js'
import type { RateLimitOptions } from './rate-limiter.js'
import type { RequestTarget, StreamHost } from './request-response.js'
import type { AbortOptions, Connection, PeerId, Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

const log = logger('gpumesh:net:frames')

export interface FrameStreamOptions {
  /** Largest frame accepted from the remote; a larger one fails the stream with `TOO_LARGE`. */
  maxFrameBytes?: number
  /** Frames buffered before the remote is paused. */
  highWaterMark?: number
  /**
   * How long `send()` waits for the remote to drain and a read waits for the next frame when no
   * signal is given. 0 waits for ever (the protocol should then send its own keep-alives).
   */
  idleTimeoutMs?: number
}

/**
 * A long-lived duplex of length-prefixed frames with back-pressure both ways: `send()` resolves once
 * the muxer accepted the frame (waiting for 'drain' when the remote is slow), and the reader pauses
 * the remote when `highWaterMark` frames are waiting to be read.
 */
export interface FrameStream extends AsyncIterable<Uint8Array> {
  readonly remotePeer: PeerId
  readonly protocol: string
  /** The underlying libp2p stream, for what this wrapper does not cover. */
  readonly stream: Stream
  send: (frame: Uint8Array | Uint8ArrayList, options?: AbortOptions) => Promise<void>
  /** The next frame; `null` once the remote closed its side. */
  read: (options?: AbortOptions) => Promise<Uint8Array | null>
  /** Closes our sending side after queued frames are flushed; frames may still arrive. */
  close: (options?: AbortOptions) => Promise<void>
  /** Resets the stream at once, both ways. */
  abort: (err?: Error) => void
}

export interface OpenFrameStreamOptions extends FrameStreamOptions {
  signal?: AbortSignal
  /** Deadline of dialling and negotiating the protocol. */
  timeoutMs?: number
}

/** Opens a frame stream to `target` on `protocol`. Throws `FrameStreamError` (`DIAL_FAILED`, `TIMEOUT`, `ABORTED`). */
export async function openFrameStream (node: StreamHost, target: RequestTarget, protocol: string, options: OpenFrameStreamOptions = {}): Promise<FrameStream> {
  const limit = deadline(options.timeoutMs ?? DEFAULT_FRAME_STREAM_TIMEOUT_MS, options.signal)
  try {
    const connection = await node.dial(target, { signal: limit.signal })
    const stream = await connection.newStream(protocol, { signal: limit.signal })
    return toFrameStream(stream, connection.remotePeer, options)
  } catch (err) {
    if (options.signal?.aborted === true) throw new FrameStreamError('ABORTED', 'opening the frame stream was aborted', { cause: err })
    if (limit.timedOut()) throw new FrameStreamError('TIMEOUT', 'opening the frame stream timed out', { cause: err })
    throw new FrameStreamError('DIAL_FAILED', `could not open ${protocol}`, { cause: err })
  } finally {
    limit.clear()
  }
}

export interface FrameStreamContext {
  peerId: PeerId
  connection: Connection
  /** Aborts when the handler should stop (stream closed or reset). */
  signal: AbortSignal
}

export type FrameStreamHandler = (stream: FrameStream, context: FrameStreamContext) => Promise<void>

export interface HandleFrameStreamsOptions extends FrameStreamOptions {
  maxInboundStreams?: number
  maxOutboundStreams?: number
  /** Streams opened per peer per window; more are reset at once. */
  rateLimit?: RateLimitOptions
  force?: boolean
}

/**
 * Registers a handler for inbound frame streams. When the handler returns the stream is closed; when
 * it throws the stream is aborted. Nothing it throws escapes.
 */
export async function handleFrameStreams (node: StreamHost, protocol: string, handler: FrameStreamHandler, options: HandleFrameStreamsOptions = {}): Promise<void> {
  const limiter = new PeerRateLimiter(options.rateLimit ?? { points: DEFAULT_RATE_LIMIT_POINTS, durationMs: DEFAULT_RATE_LIMIT_DURATION_MS })
  await node.handle(protocol, async (stream, connection) => {
    const peerId = connection.remotePeer
    if (!limiter.consume(peerId.toString())) {
      log('rate limited frame stream from %p on %s', peerId, protocol)
      stream.abort(new Error('rate limited'))
      return
    }
    const frames = toFrameStream(stream, peerId, options)
    const controller = new AbortController()
    const onClose = (): void => { controller.abort(new FrameStreamError('CLOSED', 'stream closed')) }
    stream.addEventListener('close', onClose, { once: true })
    try {
      await handler(frames, { peerId, connection, signal: controller.signal })
      if (stream.writeStatus === 'writable') await frames.close()
    } catch (err) {
      log('frame stream handler for %s failed - %e', protocol, err)
      frames.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      stream.removeEventListener('close', onClose)
    }
  }, {
    maxInboundStreams: options.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS,
    maxOutboundStreams: options.maxOutboundStreams ?? DEFAULT_MAX_OUTBOUND_STREAMS,
    ...(options.force === true ? { force: true } : {})
  })
}

/** Wraps an already negotiated libp2p stream. */
export function toFrameStream (stream: Stream, remotePeer: PeerId, options: FrameStreamOptions = {}): FrameStream {
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_FRAME_STREAM_TIMEOUT_MS
  // A paused yamux stream keeps receiving up to its (growing) window; let it buffer that much.
  stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, PAUSED_STREAM_READ_BUFFER_BYTES + maxFrameBytes)
  const reader = new FrameReader(stream, { maxFrameBytes, highWaterMark: options.highWaterMark ?? DEFAULT_FRAME_HIGH_WATER_MARK })

  const withDeadline = async <T>(signal: AbortSignal | undefined, what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const limit = deadline(idleTimeoutMs, signal)
    try {
      return await run(limit.signal)
    } catch (err) {
      if (err instanceof FrameStreamError) {
        if (err.code === 'TOO_LARGE' || err.code === 'PROTOCOL_ERROR') stream.abort(err)
        throw err
      }
      if (signal?.aborted === true) throw new FrameStreamError('ABORTED', `${what} aborted`, { cause: err })
      if (limit.timedOut()) throw new FrameStreamError('TIMEOUT', `${what} timed out after ${idleTimeoutMs} ms`, { cause: err })
      if (stream.status === 'reset') throw new FrameStreamError('STREAM_RESET', `${what}: stream was reset`, { cause: err })
      throw new FrameStreamError('CLOSED', `${what}: stream is ${stream.status}`, { cause: err })
    } finally {
      limit.clear()
    }
  }

  const read = async (options?: AbortOptions): Promise<Uint8Array | null> =>
    withDeadline(options?.signal, 'read', async (signal) => reader.next({ signal }))

  return {
    remotePeer,
    protocol: stream.protocol,
    stream,
    send: async (frame, options) => {
      if (stream.writeStatus !== 'writable') throw new FrameStreamError('CLOSED', `cannot send: stream is ${stream.writeStatus}`)
      await withDeadline(options?.signal, 'send', async (signal) => { await writeFrame(stream, frame, { signal }) })
    },
    read,
    close: async (options) => {
      await withDeadline(options?.signal, 'close', async (signal) => { await stream.close({ signal }) })
    },
    abort: (err) => {
      reader.dispose()
      stream.abort(err ?? new Error('frame stream aborted'))
    },
    async * [Symbol.asyncIterator] () {
      while (true) {
        const frame = await read()
        if (frame == null) return
        yield frame
      }
    }
  }
}
