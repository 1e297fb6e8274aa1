import { closeSync, openSync, writeSync } from 'node:fs'
import type { Bytes32, JobEvent } from '@gpumesh/protocol'
import { encodeStoredEvent, readStoredEvents, repairEventFile } from './event-file.js'

export type JobEventListener = (event: JobEvent) => void

/** Events kept in memory per job; older ones are read back from the event file on demand. */
export const DEFAULT_EVENT_HISTORY = 10_000

export interface JobEventLogOptions {
  /** Events held in memory (the newest, at least 1); default DEFAULT_EVENT_HISTORY. */
  maxHistory?: number
  /** `<jobDir>/events.jsonl`; null keeps events in memory only. */
  file?: string | null
  /** An event could not be written to the file (it is still delivered). */
  onWriteError?: (err: unknown) => void
}

/** What a stored event log says about where a job was, for a daemon that takes it over. */
export interface EventLogState {
  /** Offsets in the log files just past the last line sent as an event. */
  logEnd: { stdout: number, stderr: number }
  /** Checkpoint files already announced. */
  checkpoints: Set<string>
  /** Highest usage period index sent (-1: none). */
  lastPeriodIndex: number
  /** The last event, if any. */
  last: JobEvent | null
}

const isTerminal = (e: JobEvent): boolean => e.kind === 'exit' || e.kind === 'terminated'

/**
 * The event stream of one job: every event gets the next sequence number (1, 2, ...), is appended to
 * the job's event file (when it has one) and only then delivered, so sequence numbers mean the same
 * thing across a daemon restart (`JobEventLog.load`). The newest `maxHistory` events stay in memory;
 * `read` serves older ones from the file.
 */
export class JobEventLog {
  readonly leaseId: Bytes32
  readonly file: string | null
  readonly #history: JobEvent[] = []
  readonly #listeners = new Set<JobEventListener>()
  readonly #max: number
  readonly #onWriteError: (err: unknown) => void
  #sequence = 0
  #fd: number | null = null

  constructor (leaseId: Bytes32, options: JobEventLogOptions = {}) {
    this.leaseId = leaseId
    this.#max = Math.max(1, options.maxHistory ?? DEFAULT_EVENT_HISTORY)
    this.file = options.file ?? null
    this.#onWriteError = options.onWriteError ?? (() => {})
  }

  /**
   * Rebuilds a job's log from its event file (repairing a line torn by a kill): the same sequence
   * numbers, numbering on after the last, the newest events in memory; and where the job was (log
   * offsets, checkpoints, usage periods sent). A missing file gives an empty log.
   */
  static async load (leaseId: Bytes32, file: string, options: Omit<JobEventLogOptions, 'file'> = {}): Promise<{ log: JobEventLog, state: EventLogState }> {
    const log = new JobEventLog(leaseId, { ...options, file })
    const state: EventLogState = { logEnd: { stdout: 0, stderr: 0 }, checkpoints: new Set(), lastPeriodIndex: -1, last: null }
    if (await repairEventFile(file)) {
      for await (const { event, logEnd } of readStoredEvents(file)) {
        if (event.sequence <= log.#sequence || event.leaseId.toLowerCase() !== leaseId.toLowerCase()) continue
        log.#sequence = event.sequence
        log.#remember(event)
        state.last = event
        if (event.kind === 'log' && event.stream !== undefined && logEnd !== undefined) state.logEnd[event.stream] = logEnd
        if (event.kind === 'checkpoint' && event.text !== undefined) state.checkpoints.add(event.text)
        if (event.kind === 'usage' && event.report !== undefined) state.lastPeriodIndex = Math.max(state.lastPeriodIndex, event.report.report.periodIndex)
      }
    }
    return { log, state }
  }

  get lastSequence (): number { return this.#sequence }

  /** The newest event held, if any. */
  get last (): JobEvent | null { return this.#history.at(-1) ?? null }

  /** `logEnd`: for a log event, the byte offset in its log file just past it (stored, for resuming). */
  append (at: number, fields: Omit<JobEvent, 'type' | 'leaseId' | 'sequence' | 'at'>, logEnd?: number): JobEvent {
    const event: JobEvent = { type: 'job-event', leaseId: this.leaseId, sequence: ++this.#sequence, at, ...fields }
    this.#persist(event, logEnd)
    this.#remember(event)
    for (const listener of this.#listeners) listener(event)
    return event
  }

  /** Closes the event file (appends after this reopen it). */
  close (): void {
    if (this.#fd !== null) {
      try { closeSync(this.#fd) } catch { /* already gone */ }
      this.#fd = null
    }
  }

  /** Events with a sequence above `fromSequence` still in memory. */
  history (fromSequence = 0): JobEvent[] {
    return this.#history.filter((e) => e.sequence > fromSequence)
  }

  /** Replays events after `fromSequence` held in memory, then delivers new ones until the returned function is called. */
  subscribe (fromSequence: number, listener: JobEventListener): () => void {
    for (const e of this.history(fromSequence)) listener(e)
    return this.listen(listener)
  }

  /** Delivers new events (no replay) until the returned function is called. */
  listen (listener: JobEventListener): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /**
   * Events in (fromSequence, toSequence], in order: from the file where memory no longer holds them,
   * then from memory. Reads the file as it goes (bounded memory). Events neither held nor stored are skipped.
   */
  async * read (fromSequence: number, toSequence: number = this.#sequence, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    let next = fromSequence + 1
    while (next <= toSequence) {
      const firstHeld = this.#history[0]?.sequence ?? this.#sequence + 1
      if (next < firstHeld) {
        const stop = Math.min(firstHeld, toSequence + 1)
        if (this.file !== null) {
          for await (const { event } of readStoredEvents(this.file, signal)) {
            if (event.sequence < next) continue
            if (event.sequence >= stop) break
            yield event
            next = event.sequence + 1
          }
        }
        // What the file lacks (it could not be written) is skipped. Memory may have moved on meanwhile:
        // the loop looks again.
        next = Math.max(next, stop)
        continue
      }
      const held = this.#history.filter((e) => e.sequence >= next && e.sequence <= toSequence)
      if (held.length === 0) return
      for (const e of held) {
        yield e
        next = e.sequence + 1
      }
    }
  }

  /** True when the last event is the job's end (exit or terminated). */
  get ended (): boolean {
    const last = this.last
    return last !== null && isTerminal(last)
  }

  #remember (event: JobEvent): void {
    this.#history.push(event)
    if (this.#history.length > this.#max) this.#history.shift()
  }

  #persist (event: JobEvent, logEnd: number | undefined): void {
    if (this.file === null) return
    try {
      this.#fd ??= openSync(this.file, 'a', 0o600)
      // One write per line (a kill -9 cannot tear it; an OS crash may lose the tail), before delivery.
      writeSync(this.#fd, encodeStoredEvent(event, logEnd))
    } catch (err) {
      this.#onWriteError(err)
    }
  }
}
