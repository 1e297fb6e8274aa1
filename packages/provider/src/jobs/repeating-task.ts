/**
 * The one way periodic work runs here: a chain of timeouts (never a bare setInterval) that never
 * overlaps itself, stops when its signal aborts, and reports errors instead of losing them.
 */

export interface RepeatingTaskOptions {
  /** Run once at start instead of after the first interval. Default false. */
  runImmediately?: boolean
  /** Where errors thrown by the task go; the task keeps running. */
  onError?: (err: unknown) => void
  /**
   * The delay before the next run, asked after each run; default `intervalMs`. Lets a task keep to a
   * fixed grid on its own clock instead of drifting by its run time.
   */
  nextDelayMs?: () => number
}

export interface RepeatingTask {
  start: () => void
  stop: () => void
  readonly running: boolean
}

export function repeatingTask (
  task: (signal: AbortSignal) => void | Promise<void>,
  intervalMs: number,
  options: RepeatingTaskOptions = {}
): RepeatingTask {
  let controller: AbortController | null = null
  let timer: ReturnType<typeof setTimeout> | null = null

  const schedule = (signal: AbortSignal, delay: number): void => {
    if (signal.aborted) return
    timer = setTimeout(() => { void tick(signal) }, delay)
  }
  const tick = async (signal: AbortSignal): Promise<void> => {
    timer = null
    if (signal.aborted) return
    try {
      await task(signal)
    } catch (err) {
      if (!signal.aborted) options.onError?.(err)
    }
    schedule(signal, Math.max(0, options.nextDelayMs?.() ?? intervalMs))
  }

  return {
    start (): void {
      if (controller !== null) return
      controller = new AbortController()
      schedule(controller.signal, options.runImmediately === true ? 0 : intervalMs)
    },
    stop (): void {
      controller?.abort()
      controller = null
      if (timer !== null) clearTimeout(timer)
      timer = null
    },
    get running (): boolean { return controller !== null }
  }
}
