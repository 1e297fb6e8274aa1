import { encodeFrame } from './frame-codec.js'
import type { Stream, StreamCloseEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * Sends one length-prefixed frame. When the muxer's send window is full (`send()` returned false) it
 * waits for 'drain', so a fast writer cannot outrun a slow reader. Throws whatever the stream throws
 * (closed, reset) or the signal's reason; callers map those to their own error codes.
 */
export async function writeFrame (stream: Stream, payload: Uint8Array | Uint8ArrayList, options: { signal: AbortSignal }): Promise<void> {
  options.signal.throwIfAborted()
  if (!stream.send(encodeFrame(payload))) {
    await waitForDrain(stream, options.signal)
  }
}

/**
 * Waits for the stream's next 'drain' event. `stream.onDrain()` is not used: in @libp2p/utils 7.4 its
 * promise is created once and never cleared, so after the first drain it resolves at once and the
 * write buffer grows without bound.
 */
export async function waitForDrain (stream: Stream, signal: AbortSignal): Promise<void> {
  if (!stream.writableNeedsDrain) return
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => { cleanup(); resolve() }
    const onClose = (evt: StreamCloseEvent): void => { cleanup(); reject(evt.error ?? new Error('stream closed while waiting to send')) }
    const onAbort = (): void => { cleanup(); reject(signal.reason) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}
