/** A signal that aborts when a parent signal aborts or a timeout passes, whichever comes first. */
export interface Deadline {
  readonly signal: AbortSignal
  /** True when the timeout (not the parent) aborted the signal. */
  timedOut: () => boolean
  /** Stops the timer and detaches from the parent; call it in `finally`. */
  clear: () => void
}

export class DeadlineExceededError extends Error {
  static override name = 'DeadlineExceededError'
  override name = 'DeadlineExceededError'
}

/**
 * A signal that aborts when `signal` does or `ms` pass (with a `TimeoutError`), for one send or read
 * on a stream. Nothing to clear (Node's timeout signal holds no process open); use `deadline` where
 * the caller needs to know which of the two fired.
 */
export function within (ms: number, signal?: AbortSignal): AbortSignal {
  return signal === undefined ? AbortSignal.timeout(ms) : AbortSignal.any([signal, AbortSignal.timeout(ms)])
}

export function deadline (timeoutMs: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController()
  let expired = false
  const onParentAbort = (): void => { controller.abort(parent?.reason) }
  const timer = Number.isFinite(timeoutMs) && timeoutMs > 0
    ? setTimeout(() => {
      expired = true
      controller.abort(new DeadlineExceededError(`deadline of ${timeoutMs} ms passed`))
    }, timeoutMs)
    : undefined
  if (parent?.aborted === true) {
    controller.abort(parent.reason)
  } else {
    parent?.addEventListener('abort', onParentAbort, { once: true })
  }
  return {
    signal: controller.signal,
    timedOut: () => expired,
    clear: () => {
      if (timer != null) clearTimeout(timer)
      parent?.removeEventListener('abort', onParentAbort)
    }
  }
}

/**
 * Waits for `promise` or for `signal` to abort. The promise is not cancelled (it should watch the
 * signal itself); a later rejection of it is swallowed so it can never go unhandled.
 */
export async function raceSignal<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {})
    throw signal.reason
  }
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        onAbort = () => { reject(signal.reason) }
        signal.addEventListener('abort', onAbort, { once: true })
      })
    ])
  } finally {
    if (onAbort != null) signal.removeEventListener('abort', onAbort)
    promise.catch(() => {})
  }
}
