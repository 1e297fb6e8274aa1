/**
 * What this matcher has seen each provider do with its proposals. Providers that accept and complete
 * leases rank above equally priced providers that reject, fail or time out.
 */

export interface ProviderRecord {
  accepted: number
  completed: number
  rejected: number
  failed: number
  timeouts: number
}

/** The score of a provider this matcher knows nothing about. */
export const NEUTRAL_SCORE = 0.5

export class ProviderRecords {
  private readonly records = new Map<string, ProviderRecord>()

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

  /** Forgets a provider (e.g. when it left the book for good). */
  delete (peerId: string): boolean {
    return this.records.delete(peerId)
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
