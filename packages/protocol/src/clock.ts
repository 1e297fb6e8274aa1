/**
 * Time, injected everywhere so that expiry, deadlines and intervals are tested with fake timers or a
 * clock moved by hand. The one definition for every package.
 */
export interface Clock {
  /** Unix milliseconds: the wall clock, what is signed, stored and compared with `expiresAt`. */
  now: () => number
  /** Milliseconds that never go back: intervals, round-trip times, rate-limit windows, billed time. */
  monotonicNow: () => number
}

/** The real clock: `Date.now` and `performance.now`. */
export const systemClock: Clock = Object.freeze({
  now: (): number => Date.now(),
  monotonicNow: (): number => performance.now()
})
