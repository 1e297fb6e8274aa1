import { LATENCY_SMOOTHING } from './constants.js'

/**
 * Round-trip time per provider, an exponential moving average of samples from pings and from
 * proposal round trips. Unknown providers have no estimate (they rank last among equals).
 */
export class LatencyEstimates {
  readonly #rtt = new Map<string, number>()

  record (peerId: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return
    const held = this.#rtt.get(peerId)
    this.#rtt.set(peerId, held == null ? ms : held + LATENCY_SMOOTHING * (ms - held))
  }

  get (peerId: string): number | undefined {
    return this.#rtt.get(peerId)
  }

  delete (peerId: string): void {
    this.#rtt.delete(peerId)
  }
}
