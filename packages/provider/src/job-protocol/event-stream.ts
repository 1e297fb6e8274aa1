import { pushable } from 'it-pushable'
import { encodeJobEvent, type JobEvent } from '@gpumesh/protocol'
import type { JobEventLog } from '../jobs/index.js'
import { reply, type Send } from './wire.js'

export interface EventStreamOptions {
  /** A keep-alive reply is sent when no live event was sent for this long. */
  keepAliveMs: number
  /** After the job's last event, how long to wait for the renter's final voucher. */
  finalVoucherWaitMs: number
  /** Live events queued for a slow renter before its stream is dropped (it can attach again). */
  maxQueuedEvents: number
}

/** What the live queue carries: an event, or the keep-alive timer's tick. */
const KEEPALIVE = Symbol('keepalive')

const isTerminal = (event: JobEvent): boolean => event.kind === 'exit' || event.kind === 'terminated'

/**
 * Streams a job's events after `fromSequence` to its renter: the history first (from memory or the
 * event file, paced by the renter), then live events through a bounded queue, with a keep-alive when
 * nothing was sent for a while; until the job's last event was sent and its final voucher came (or did
 * not, in time), or the renter went away (`renter` settles: it reads what the renter sends meanwhile).
 */
export async function streamEvents (
  log: JobEventLog,
  fromSequence: number,
  io: { send: Send, renter: (signal: AbortSignal) => Promise<void> },
  options: EventStreamOptions,
  signal: AbortSignal
): Promise<void> {
  const { send } = io
  // Live events from here on are queued while the history up to here is sent.
  const live = pushable<JobEvent | typeof KEEPALIVE>({ objectMode: true })
  let overflow = false
  const replayTo = log.lastSequence
  const unsubscribe = log.listen((event) => {
    if (overflow) return
    if (live.readableLength >= options.maxQueuedEvents) {
      // What is queued is still sent; then the stream ends, and the renter attaches again.
      overflow = true
      live.end()
      return
    }
    live.push(event)
  })
  const loop = new AbortController()
  const loopSignal = AbortSignal.any([signal, loop.signal])
  let renterDone = false
  const renter = io.renter(loopSignal).finally(() => { renterDone = true; live.end() })
  const onAbort = (): void => { live.end() }
  signal.addEventListener('abort', onAbort, { once: true })
  let keepAlive: ReturnType<typeof setTimeout> | null = null
  const armKeepAlive = (): void => {
    if (keepAlive !== null) clearTimeout(keepAlive)
    keepAlive = setTimeout(() => { live.push(KEEPALIVE) }, options.keepAliveMs)
  }
  try {
    let terminal = false
    for await (const event of log.read(fromSequence, replayTo, loopSignal)) {
      if (renterDone) break
      await send(encodeJobEvent(event))
      terminal = isTerminal(event)
      if (terminal) break
    }
    // A renter that has seen everything of an ended job is told again how it ended.
    if (!terminal && !renterDone && log.ended && live.readableLength === 0) {
      await send(encodeJobEvent(log.last as JobEvent))
      terminal = true
    }
    if (!terminal && !renterDone && !signal.aborted) {
      armKeepAlive()
      for await (const item of live) {
        if (signal.aborted) break
        if (item === KEEPALIVE) {
          await send(reply('keepalive'))
        } else {
          if (item.sequence <= fromSequence) continue
          await send(encodeJobEvent(item))
          terminal = isTerminal(item)
        }
        if (terminal) break
        armKeepAlive()
      }
      if (overflow && !terminal) throw new Error('the renter reads events too slowly; dropped (it can attach again)')
    }
    if (terminal) {
      // The renter pays the final report, then closes its side; wait for that, briefly.
      await Promise.race([renter, new Promise((resolve) => { setTimeout(resolve, options.finalVoucherWaitMs).unref() })])
    }
  } finally {
    if (keepAlive !== null) clearTimeout(keepAlive)
    signal.removeEventListener('abort', onAbort)
    unsubscribe()
    live.end()
    loop.abort()
    await renter.catch(() => {})
  }
}
