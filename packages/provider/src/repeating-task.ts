import type { Logger } from 'pino'

export interface RepeatingTaskOptions {
  name: string
  intervalMs: number
  /** Run once at `start()` instead of after the first interval. Default false. */
  runAtStart?: boolean
  logger: Logger
}

/**
 * The one way background work repeats here: `fn` runs every `intervalMs` (measured from the end of the
 * previous run, so runs never overlap), with the task's abort signal; a failure is logged and the next
 * run still happens. `stop()` aborts the signal and waits for a run in progress.
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

  get started (): boolean {
    return this.#controller != null
  }

  start (): void {
    if (this.#controller != null) return
    this.#controller = new AbortController()
    if (this.#options.runAtStart === true) this.runNow()
    else this.#schedule(this.#options.intervalMs)
  }

  /** Runs now (unless a run is in progress) and restarts the interval. */
  runNow (): void {
    if (this.#controller == null || this.#running != null) return
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = null
    const signal = this.#controller.signal
    this.#running = (async () => {
      try {
        await this.#fn(signal)
      } catch (err) {
        if (!signal.aborted) this.#options.logger.error({ err, task: this.#options.name }, 'background task failed')
      }
    })().finally(() => {
      this.#running = null
      if (!signal.aborted) this.#schedule(this.#options.intervalMs)
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
    this.#timer = setTimeout(() => { this.runNow() }, delayMs)
    this.#timer.unref?.()
  }
}
