export interface RateLimitOptions {
  /** Requests allowed per window. */
  points: number
  /** Window length in milliseconds. */
  durationMs: number
}

interface Window {
  start: number
  used: number
}

/** Entries kept before expired windows are swept. */
const SWEEP_AT = 4096

/** A fixed-window counter per key (a peer id). Pure apart from the injected clock. */
export class PeerRateLimiter {
  private readonly windows = new Map<string, Window>()
  private readonly points: number
  private readonly durationMs: number
  private readonly now: () => number

  constructor (options: RateLimitOptions, now: () => number = () => performance.now()) {
    this.points = options.points
    this.durationMs = options.durationMs
    this.now = now
  }

  /** Takes one point for `key`; false when its window is spent. */
  consume (key: string): boolean {
    const now = this.now()
    let window = this.windows.get(key)
    if (window == null || now - window.start >= this.durationMs) {
      if (window == null && this.windows.size >= SWEEP_AT) this.sweep(now)
      window = { start: now, used: 0 }
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
