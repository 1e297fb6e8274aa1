import { encodeJobReply, type JobReply } from '@gpumesh/protocol'
import { within, type FrameStream } from '@gpumesh/net'

/** Sends one frame on a job stream; see `serialSender`. */
export type Send = (bytes: Uint8Array) => Promise<void>

/** A `job-reply`: ok without a code, else the code and a sentence (cut to 1 KiB). */
export const reply = (subject: JobReply['subject'], code: string | null = null, message: string | null = null): Uint8Array =>
  encodeJobReply({ type: 'job-reply', subject, ok: code === null, code, message: message === null ? null : message.slice(0, 1024) })

/**
 * One frame at a time on the wire, whoever sends it (the event writer, voucher replies, keep-alives),
 * in the order asked. A send the renter does not drain within `timeoutMs` fails (and so do the ones
 * queued behind it only if they time out too).
 */
export function serialSender (stream: Pick<FrameStream, 'send'>, timeoutMs: number, signal: AbortSignal): Send {
  let tail: Promise<void> = Promise.resolve()
  return async (bytes) => {
    const next = tail.then(async () => { await stream.send(bytes, { signal: within(timeoutMs, signal) }) })
    tail = next.catch(() => {})
    await next
  }
}

/**
 * Runs `work`, then answers `subject` ok, or with the refusal `asRefusal` makes of what it threw.
 * Returns whether it succeeded. Nothing thrown by `work` crosses the wire as anything but a code.
 */
export async function respond (send: Send, subject: JobReply['subject'], work: () => Promise<void>, asRefusal: (err: unknown) => { code: string, message: string }): Promise<boolean> {
  try {
    await work()
  } catch (err) {
    const refusal = asRefusal(err)
    await send(reply(subject, refusal.code, refusal.message))
    return false
  }
  await send(reply(subject))
  return true
}
