import { Uint8ArrayList } from 'uint8arraylist'
import { FrameStreamError } from './errors.js'
import { decodeVarint } from './frame-codec.js'
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'

export interface FrameReaderOptions {
  /** A frame declaring more bytes than this fails the reader with `TOO_LARGE`. */
  maxFrameBytes: number
  /** Decoded frames held before the stream is paused, so the remote's muxer stops sending. */
  highWaterMark: number
}

/**
 * Reads length-prefixed frames from a libp2p 3 stream. libp2p 3 streams push 'message' events (and
 * their async iterator buffers without limit), so this keeps its own queue and pauses the stream when
 * the queue is full: yamux then withholds window updates and the sender's `send()` starts returning
 * false. Complete frames that arrived before a reset are still handed out before the error.
 */
export class FrameReader {
  private readonly stream: Stream
  private readonly options: FrameReaderOptions
  private readonly buffer = new Uint8ArrayList()
  private readonly frames: Uint8Array[] = []
  private failure: FrameStreamError | undefined
  private ended = false
  private wake: PromiseWithResolversLike | undefined
  private disposed = false

  constructor (stream: Stream, options: FrameReaderOptions) {
    this.stream = stream
    this.options = options
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('end', this.onEnd)
    stream.addEventListener('close', this.onClose)
    this.checkEnded()
  }

  /** The next frame, `null` once the remote closed its side cleanly. */
  async next (options: { signal: AbortSignal }): Promise<Uint8Array | null> {
    while (true) {
      const frame = this.frames.shift()
      if (frame != null) {
        this.maybeResume()
        return frame
      }
      if (this.failure != null) throw this.failure
      if (this.ended) return null
      options.signal.throwIfAborted()
      this.wake = withResolvers()
      const wake = this.wake
      const onAbort = (): void => { wake.reject(options.signal.reason) }
      options.signal.addEventListener('abort', onAbort, { once: true })
      try {
        await wake.promise
      } finally {
        options.signal.removeEventListener('abort', onAbort)
        this.wake = undefined
      }
    }
  }

  /** Stops listening to the stream; frames not yet read are dropped. */
  dispose (): void {
    if (this.disposed) return
    this.disposed = true
    this.stream.removeEventListener('message', this.onMessage)
    this.stream.removeEventListener('end', this.onEnd)
    this.stream.removeEventListener('close', this.onClose)
  }

  private readonly onMessage = (evt: StreamMessageEvent): void => {
    if (this.failure != null) return
    this.buffer.append(evt.data)
    this.decode()
    if (this.frames.length >= this.options.highWaterMark && this.stream.readStatus === 'readable') {
      this.stream.pause()
    }
    this.checkEnded()
    this.wake?.resolve()
  }

  /**
   * 'end' can fire before data that protocol negotiation read ahead is pushed back onto the stream
   * (`readableEnded` is documented to work that way), so the end is only real once the stream's own
   * buffer is empty too.
   */
  private checkEnded (): void {
    if (!this.stream.readableEnded || this.stream.readBufferLength > 0) return
    // 'end' also fires on a reset or a local abort, before the 'close' event carrying the error
    if (this.stream.status === 'reset' || this.stream.status === 'aborted') {
      this.failure ??= this.stream.status === 'reset'
        ? new FrameStreamError('STREAM_RESET', 'stream was reset by the remote')
        : new FrameStreamError('ABORTED', 'stream was aborted locally')
      this.wake?.resolve()
      return
    }
    this.markEnded()
  }

  private readonly onEnd = (): void => {
    this.checkEnded()
    this.wake?.resolve()
  }

  private markEnded (): void {
    if (this.ended) return
    this.ended = true
    if (this.buffer.byteLength > 0 && this.failure == null) {
      this.failure = new FrameStreamError('PROTOCOL_ERROR', `stream ended inside a frame (${this.buffer.byteLength} bytes left over)`)
    }
    this.wake?.resolve()
  }

  private readonly onClose = (evt: StreamCloseEvent): void => {
    if (evt.error != null && !this.ended && this.failure == null) {
      this.failure = evt.local === true
        ? new FrameStreamError('ABORTED', 'stream was aborted locally', { cause: evt.error })
        : new FrameStreamError('STREAM_RESET', 'stream was reset by the remote', { cause: evt.error })
    } else {
      this.checkEnded()
    }
    this.wake?.resolve()
  }

  private decode (): void {
    while (this.buffer.byteLength > 0) {
      const prefix = decodeVarint(this.buffer)
      if (prefix.kind === 'incomplete') return
      if (prefix.kind === 'invalid') {
        this.fail(new FrameStreamError('PROTOCOL_ERROR', 'frame length prefix is not a valid varint'))
        return
      }
      if (prefix.value > this.options.maxFrameBytes) {
        this.fail(new FrameStreamError('TOO_LARGE', `frame of ${prefix.value} bytes exceeds the limit of ${this.options.maxFrameBytes}`))
        return
      }
      const total = prefix.bytes + prefix.value
      if (this.buffer.byteLength < total) return
      this.frames.push(this.buffer.subarray(prefix.bytes, total))
      this.buffer.consume(total)
    }
  }

  private fail (err: FrameStreamError): void {
    this.failure = err
    this.buffer.consume(this.buffer.byteLength)
    this.wake?.resolve()
  }

  private maybeResume (): void {
    if (this.stream.readStatus === 'paused' && this.frames.length < Math.max(1, this.options.highWaterMark / 2)) {
      this.stream.resume()
    }
  }
}

interface PromiseWithResolversLike {
  promise: Promise<void>
  resolve: () => void
  reject: (reason: unknown) => void
}

/** Node 20 has no Promise.withResolvers and this package installs no polyfill. */
function withResolvers (): PromiseWithResolversLike {
  let resolve!: () => void
  let reject!: (reason: unknown) => void
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
