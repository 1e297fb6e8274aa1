import type { Bytes32, JobEvent, SignedUsageReport } from '@gpumesh/protocol'
import type { LeaseState } from '@gpumesh/ledger'

/** How a job's lease ended. */
export interface JobOutcome {
  leaseId: string
  state: Extract<LeaseState, 'completed' | 'failed' | 'terminated'>
  /** EXIT_0, EXIT_<n>, UNPAID, RENTER_CANCEL, MAX_RUNTIME, PROVIDER_SHUTDOWN, ... */
  reason: string
  exitCode: number | null
  /** The final report, or null when the last regular report already covered the whole run. */
  finalReport: SignedUsageReport | null
}

export type JobEventListener = (event: JobEvent) => void

/** Events kept in memory per job for renters that attach late; older ones are dropped (logs stay on disk). */
export const DEFAULT_EVENT_HISTORY = 10_000

/**
 * The event stream of one job: every event gets the next sequence number (1, 2, ...); listeners
 * subscribe from a sequence and get the history after it, then live events.
 */
export class JobEventLog {
  readonly leaseId: Bytes32
  readonly #history: JobEvent[] = []
  readonly #listeners = new Set<JobEventListener>()
  readonly #max: number
  #sequence = 0

  constructor (leaseId: Bytes32, maxHistory = DEFAULT_EVENT_HISTORY) {
    this.leaseId = leaseId
    this.#max = maxHistory
  }

  get lastSequence (): number { return this.#sequence }

  append (at: number, fields: Omit<JobEvent, 'type' | 'leaseId' | 'sequence' | 'at'>): JobEvent {
    const event: JobEvent = { type: 'job-event', leaseId: this.leaseId, sequence: ++this.#sequence, at, ...fields }
    this.#history.push(event)
    if (this.#history.length > this.#max) this.#history.shift()
    for (const listener of this.#listeners) listener(event)
    return event
  }

  /** Events with a sequence above `fromSequence` still in memory. */
  history (fromSequence = 0): JobEvent[] {
    return this.#history.filter((e) => e.sequence > fromSequence)
  }

  /** Replays events after `fromSequence`, then delivers new ones until the returned function is called. */
  subscribe (fromSequence: number, listener: JobEventListener): () => void {
    for (const e of this.history(fromSequence)) listener(e)
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }
}
