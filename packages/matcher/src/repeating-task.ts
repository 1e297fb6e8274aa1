/**
 * Runs `task` every `intervalMs` until stopped: the next run is scheduled only after the previous one
 * finished, so runs never overlap, and `stop()` waits for a run in progress. The timer is unref'd.
 */
export class RepeatingTask {
  readonly #task: (signal: AbortSignal) => Promise<void> | void
  readonly #intervalMs: number
  readonly #onError: (err: unknown) => void
  #controller: AbortController | null = null
  #timer: ReturnType<typeof setTimeout> | null = null
  #running: Promise<void> | null = null

  constructor (task: (signal: AbortSignal) => Promise<void> | void, intervalMs: number, onError: (err: unknown) => void) {
    this.#task = task
    this.#intervalMs = intervalMs
    this.#onError = onError
  }

  start (): void {
    if (this.#controller != null) return
    this.#controller = new AbortController()
    this.#schedule()
  }

  async stop (): Promise<void> {
    this.#controller?.abort()
    this.#controller = null
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = null
    await this.#running
  }

  #schedule (): void {
    const controller = this.#controller
    if (controller == null) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#running = (async () => {
        try {
          await this.#task(controller.signal)
        } catch (err) {
          if (!controller.signal.aborted) this.#onError(err)
        }
      })().finally(() => {
        this.#running = null
        if (!controller.signal.aborted) this.#schedule()
      })
    }, this.#intervalMs)
    this.#timer.unref?.()
  }
}
