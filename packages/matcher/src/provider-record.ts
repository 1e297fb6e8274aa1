/**
 * What this matcher has seen each provider do with its proposals. Providers that accept and complete
 * leases rank above equally priced providers that reject, fail or time out.
 *
 * Beside that, how often each provider went away: the time its offer was live in the book and the
 * number of times that offer expired without a newer one (`recordPresent` when an offer enters the
 * book, `recordDeparture` when the prune finds it expired). A provider whose daemon stops or loses the
 * network stops renewing its offer, so each expiry is an interruption of anything it was running; a
 * renter weighs it against how long the provider was watched (`observation`). Served on the book
 * protocol when a query asks for records.
 */
import type { ProviderObservation } from '@gpumesh/protocol'

export interface ProviderRecord {
  accepted: number
  completed: number
  rejected: number
  failed: number
  timeouts: number
}

/** The score of a provider this matcher knows nothing about. */
export const NEUTRAL_SCORE = 0.5

interface Presence {
  /** When the provider's current stay in the book began; null while it is away. */
  since: number | null
  /** Milliseconds of finished stays. */
  observedMs: number
  interruptions: number
}

export class ProviderRecords {
  private readonly records = new Map<string, ProviderRecord>()
  private readonly presence = new Map<string, Presence>()

  recordAccepted (peerId: string): void { this.entry(peerId).accepted++ }
  recordCompleted (peerId: string): void { this.entry(peerId).completed++ }
  recordRejected (peerId: string): void { this.entry(peerId).rejected++ }
  recordFailed (peerId: string): void { this.entry(peerId).failed++ }
  recordTimeout (peerId: string): void { this.entry(peerId).timeouts++ }

  /** A copy of the counts, or undefined for a provider never seen. */
  get (peerId: string): ProviderRecord | undefined {
    const record = this.records.get(peerId)
    return record == null ? undefined : { ...record }
  }

  /** The provider's offer entered the book at `now` (a no-op while it is already there). */
  recordPresent (peerId: string, now: number): void {
    let p = this.presence.get(peerId)
    if (p == null) {
      p = { since: null, observedMs: 0, interruptions: 0 }
      this.presence.set(peerId, p)
    }
    if (p.since == null) p.since = now
  }

  /** The provider's offer expired in the book at `now` without a newer one: one interruption. */
  recordDeparture (peerId: string, now: number): void {
    const p = this.presence.get(peerId)
    if (p == null || p.since == null) return
    p.observedMs += Math.max(0, now - p.since)
    p.since = null
    p.interruptions++
  }

  /** What was observed of the provider up to `now` (its current stay included), or undefined. */
  observation (peerId: string, now: number): ProviderObservation | undefined {
    const p = this.presence.get(peerId)
    if (p == null) return undefined
    const observedMs = p.observedMs + (p.since == null ? 0 : Math.max(0, now - p.since))
    return { peerId, observedSec: Math.floor(observedMs / 1000), interruptions: p.interruptions }
  }

  /** Forgets a provider (e.g. when it left the book for good). */
  delete (peerId: string): boolean {
    const had = this.presence.delete(peerId)
    return this.records.delete(peerId) || had
  }

  get size (): number {
    return this.records.size
  }

  /**
   * In (0, 1), higher is better: (good + 1) / (good + bad + 2) with good = accepted + completed and
   * bad = rejected + failed + timeouts. An unknown provider scores `NEUTRAL_SCORE`, as does one with as
   * many good outcomes as bad ones; the +1/+2 keep one outcome from deciding everything.
   */
  score (peerId: string): number {
    const r = this.records.get(peerId)
    if (r == null) return NEUTRAL_SCORE
    const good = r.accepted + r.completed
    const bad = r.rejected + r.failed + r.timeouts
    return (good + 1) / (good + bad + 2)
  }

  private entry (peerId: string): ProviderRecord {
    let record = this.records.get(peerId)
    if (record == null) {
      record = { accepted: 0, completed: 0, rejected: 0, failed: 0, timeouts: 0 }
      this.records.set(peerId, record)
    }
    return record
  }
}
