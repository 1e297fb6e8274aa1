/**
 * The job stream's event writer on its own: history then live events through the async queue, the
 * keep-alive while the job is quiet, the bounded queue for a renter that does not read, the ending.
 */
import { describe, expect, it, vi } from 'vitest'
import { decodeMessage, type Bytes32, type JobEvent, type JobReply } from '@gpumesh/protocol'
import { JobEventLog } from '../../src/jobs/index.js'
import { streamEvents } from '../../src/job-protocol/event-stream.js'

const LEASE = `0x${'ab'.repeat(32)}` as Bytes32
const OPTIONS = { keepAliveMs: 10_000, finalVoucherWaitMs: 10_000, maxQueuedEvents: 100 }

function wire (): { frames: Array<JobEvent | JobReply>, send: (bytes: Uint8Array) => Promise<void> } {
  const frames: Array<JobEvent | JobReply> = []
  return { frames, send: async (bytes) => { frames.push(decodeMessage(bytes, ['job-event', 'job-reply'])) } }
}

const log = (n: number): JobEventLog => {
  const events = new JobEventLog(LEASE, { file: null })
  for (let i = 0; i < n; i++) events.append(i, { kind: 'log', stream: 'stdout', text: `line ${i}` })
  return events
}

/** A promise and the function that settles it. */
function opening (): { promise: Promise<void>, open: () => void } {
  let open = (): void => {}
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** A renter that sends nothing and keeps its side open until the writer is done with it. */
const untilAborted = async (signal: AbortSignal): Promise<void> => {
  await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
}

describe('streamEvents', () => {
  it('sends the history after fromSequence, then live events, and waits for the renter after the last one', async () => {
    const events = log(3)
    const { frames, send } = wire()
    const renterDone = opening()
    const streaming = streamEvents(events, 1, { send, renter: async () => { await renterDone.promise } }, OPTIONS, new AbortController().signal)
    await vi.waitFor(() => { expect(frames).toHaveLength(2) })
    events.append(10, { kind: 'log', stream: 'stderr', text: 'live' })
    events.append(11, { kind: 'exit', exitCode: 0, state: 'completed' })
    await vi.waitFor(() => { expect(frames).toHaveLength(4) })
    // The ending was sent; the writer now waits for the renter's final voucher (its side closing).
    renterDone.open()
    await streaming
    expect(frames.map((f) => f.type === 'job-event' ? f.sequence : -1)).toEqual([2, 3, 4, 5])
  })

  it('sends a keep-alive while the job is quiet, and stops when the renter goes away', async () => {
    const events = log(1)
    const { frames, send } = wire()
    const renterDone = opening()
    const streaming = streamEvents(events, 0, { send, renter: async () => { await renterDone.promise } }, { ...OPTIONS, keepAliveMs: 20 }, new AbortController().signal)
    await vi.waitFor(() => { expect(frames.filter((f) => f.type === 'job-reply' && f.subject === 'keepalive').length).toBeGreaterThanOrEqual(2) })
    renterDone.open()
    await streaming
    expect(frames[0]).toMatchObject({ type: 'job-event', sequence: 1 })
  })

  it('tells a renter that saw everything of an ended job how it ended', async () => {
    const events = log(2)
    events.append(5, { kind: 'terminated', state: 'terminated', reason: 'UNPAID' })
    const { frames, send } = wire()
    await streamEvents(events, 3, { send, renter: untilAborted }, { ...OPTIONS, finalVoucherWaitMs: 10 }, new AbortController().signal)
    expect(frames).toEqual([expect.objectContaining({ type: 'job-event', sequence: 3, kind: 'terminated', reason: 'UNPAID' })])
  })

  it('drops a renter whose queue of live events overflows, after sending what was queued', async () => {
    const events = log(1)
    const frames: JobEvent[] = []
    const gate = opening()
    // The renter does not read: the first send (the history) blocks until the queue has overflowed.
    const send = async (bytes: Uint8Array): Promise<void> => {
      await gate.promise
      frames.push(decodeMessage(bytes, ['job-event']))
    }
    const streaming = streamEvents(events, 0, { send, renter: untilAborted }, { ...OPTIONS, maxQueuedEvents: 3 }, new AbortController().signal)
    for (let i = 0; i < 6; i++) events.append(20 + i, { kind: 'log', stream: 'stdout', text: `live ${i}` })
    gate.open()
    await expect(streaming).rejects.toThrow('the renter reads events too slowly')
    expect(frames.map((f) => f.sequence)).toEqual([1, 2, 3, 4])
  })

  it('ends when the stream is aborted (the provider stopping)', async () => {
    const events = log(1)
    const { frames, send } = wire()
    const controller = new AbortController()
    const streaming = streamEvents(events, 0, { send, renter: untilAborted }, OPTIONS, controller.signal)
    await vi.waitFor(() => { expect(frames).toHaveLength(1) })
    controller.abort()
    await streaming
    events.append(30, { kind: 'log', stream: 'stdout', text: 'after' })
    expect(frames).toHaveLength(1)
  })
})
