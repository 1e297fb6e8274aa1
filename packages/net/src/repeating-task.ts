/**
 * The one way periodic work runs in gpumesh: a chain of timeouts (never a bare setInterval).
 *
 * Not `@libp2p/utils`' `repeatingTask`: its `stop()` returns at once while a run may still be writing
 * (a daemon closing its ledger next would close it under that run), it swallows the task's errors, its
 * timer keeps the process alive, and it has no way to keep runs on a grid. This one has what the
 * daemons need and nothing more.
 */

/** Where a failed run is reported when no `onError` is given: any pino-like logger. */
export interface RepeatingTaskLogger {
  error: (fields: Record<string, unknown>, message: string) => void
}

export interface RepeatingTaskOptions {
  /** Names the task in what a failure logs. */
  name?: string
  /** The delay between the end of one run and the start of the next. */
  intervalMs: number
  /** Run once at `start()` (in the same call) instead of after the first interval. Default false. */
  runAtStart?: boolean
  /**
   * The delay before the next run, asked after each run; default `intervalMs`. Lets a task keep to a
   * fixed grid on its own clock instead of drifting by its run time.
   */
  nextDelayMs?: () => number
  /** Where errors thrown by a run go (the task keeps running); takes precedence over `logger`. */
  onError?: (err: unknown) => void
  /** Logs a failed run at error level when no `onError` is given. */
  logger?: RepeatingTaskLogger
}

/**
 * Runs `fn` every `intervalMs` until stopped, with the task's abort signal. The next run is scheduled
 * only when the previous one finished, so runs never overlap. A failure is reported (`onError`, or
 * `logger`) and the next run still happens; a failure after `stop()` is not reported. The timer is
 * unref'd: a repeating task alone never keeps the process alive.
 *
 * `stop()` aborts the signal and clears the timer at once (a caller that cannot wait may drop the
 * promise: nothing runs after it), and its promise settles when a run in progress has finished.
 */
export class RepeatingTask {
  readonly #options: RepeatingTaskOptions
  readonly #fn: (signal: AbortSignal) => Promise<void> | void
  #controller: AbortController | null = null
  #timer: ReturnType<typeof setTimeout> | null = null
  #running: Promise<void> | null = null

  constructor (options: RepeatingTaskOptions, fn: (signal: AbortSignal) => Promise<void> | void) {
    this.#options = options
    this.#fn = fn
  }

  /** Between `start()` and `stop()`. */
  get started (): boolean {
    return this.#controller != null
  }

  start (): void {
    if (this.#controller != null) return
    this.#controller = new AbortController()
    if (this.#options.runAtStart === true) this.runNow()
    else this.#schedule(this.#options.intervalMs)
  }

  /** Runs now (unless stopped or a run is in progress) and restarts the interval after it. */
  runNow (): void {
    const controller = this.#controller
    if (controller == null || this.#running != null) return
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = null
    const signal = controller.signal
    this.#running = (async () => {
      try {
        await this.#fn(signal)
      } catch (err) {
        if (!signal.aborted) this.#report(err)
      }
    })().finally(() => {
      this.#running = null
      if (signal.aborted) {
        // Restarted while this run finished: the new start's first run waited for this one.
        if (this.#controller != null && this.#timer == null) this.runNow()
        return
      }
      let delay = this.#options.intervalMs
      try {
        if (this.#options.nextDelayMs != null) delay = this.#options.nextDelayMs()
      } catch (err) {
        this.#report(err)
      }
      this.#schedule(Math.max(0, delay))
    })
  }

  async stop (): Promise<void> {
    const controller = this.#controller
    if (controller == null) return
    this.#controller = null
    controller.abort()
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = null
    await this.#running
  }

  #schedule (delayMs: number): void {
    if (this.#controller == null) return
    this.#timer = setTimeout(() => { this.#timer = null; this.runNow() }, delayMs)
    this.#timer.unref?.()
  }

  #report (err: unknown): void {
    if (this.#options.onError != null) this.#options.onError(err)
    else this.#options.logger?.error({ err, task: this.#options.name }, 'background task failed')
  }
}
