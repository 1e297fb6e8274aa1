import { performance } from 'node:perf_hooks'

/**
 * Time, injected everywhere so that expiry and deadlines can be tested with fake timers.
 * `now()` is Unix milliseconds (wall clock: what is signed and stored); `monotonicNow()` never goes
 * back and measures intervals (rate-limit windows).
 */
export interface Clock {
  now: () => number
  monotonicNow: () => number
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonicNow: () => performance.now()
}
