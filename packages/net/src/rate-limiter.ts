export interface RateLimitOptions {
  /** Requests allowed per window. */
  points: number
  /** Window length in milliseconds. */
  durationMs: number
  /**
   * Keys remembered at most: a new key beyond it first sweeps expired windows, then forgets the key
   * whose window started first (so a flood of new peer ids costs bounded memory). Default unbounded.
   */
  maxKeys?: number
}

interface Window {
  start: number
  used: number
}

/** Entries kept before expired windows are swept. */
const SWEEP_AT = 4096

/**
 * A fixed-window counter per key (a peer id). Pure apart from the injected clock (monotonic
 * milliseconds). The one rate limiter of the workspace: the request/response and frame-stream
 * handlers, gossip authors, the matcher's offer intake and the provider's lease proposals use it.
 * Not `@libp2p/utils`' `RateLimiter`: that one arms a timer per key on the real clock (no injected
 * clock, no bound on keys) and throws to refuse.
 */
export class PeerRateLimiter {
  private readonly windows = new Map<string, Window>()
  private readonly points: number
  private readonly durationMs: number
  private readonly maxKeys: number
  private readonly now: () => number

  constructor (options: RateLimitOptions, now: () => number = () => performance.now()) {
    this.points = options.points
    this.durationMs = options.durationMs
    this.maxKeys = options.maxKeys ?? Number.POSITIVE_INFINITY
    this.now = now
  }

  /** Takes one point for `key`; false when its window is spent. */
  consume (key: string): boolean {
    const now = this.now()
    let window = this.windows.get(key)
    if (window == null || now - window.start >= this.durationMs) {
      if (window == null && this.windows.size >= Math.min(SWEEP_AT, this.maxKeys)) {
        this.sweep(now)
        if (this.windows.size >= this.maxKeys) {
          const oldest = this.windows.keys().next()
          if (oldest.done !== true) this.windows.delete(oldest.value)
        }
      }
      window = { start: now, used: 0 }
      // Deleted first so the map stays in the order windows started: the first key is the oldest.
      this.windows.delete(key)
      this.windows.set(key, window)
    }
    if (window.used >= this.points) return false
    window.used++
    return true
  }

  private sweep (now: number): void {
    for (const [key, window] of this.windows) {
      if (now - window.start >= this.durationMs) this.windows.delete(key)
    }
  }
}
