/** Time, injected so expiry and pruning are tested without real sleeps. */
export interface Clock {
  /** Unix milliseconds (compared with offers' and orders' `expiresAt`). */
  now: () => number
  /** Monotonic milliseconds (round-trip times). */
  monotonic: () => number
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now()
}
