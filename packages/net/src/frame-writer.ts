import { encodeFrame } from './frame-codec.js'
import type { MessageStream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * Sends one length-prefixed frame. When the muxer's send window is full (`send()` returned false) it
 * waits for 'drain', so a fast writer cannot outrun a slow reader. Throws whatever the stream throws
 * (closed, reset) or the signal's reason; callers map those to their own error codes.
 */
export async function writeFrame (stream: MessageStream, payload: Uint8Array | Uint8ArrayList, options: { signal: AbortSignal }): Promise<void> {
  options.signal.throwIfAborted()
  if (!stream.send(encodeFrame(payload))) {
    await stream.onDrain({ signal: options.signal })
  }
}
