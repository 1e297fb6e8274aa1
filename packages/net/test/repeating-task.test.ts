import { RepeatingTask } from '@gpumesh/net'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

/** A run that waits until `release()` is called, so a test decides when it ends. */
function heldRun (): { fn: (signal: AbortSignal) => Promise<void>, release: () => void, starts: number[], signals: AbortSignal[] } {
  const state = { starts: [] as number[], signals: [] as AbortSignal[], release: () => {} }
  return {
    starts: state.starts,
    signals: state.signals,
    release: () => { state.release() },
    fn: async (signal) => {
      state.starts.push(Date.now())
      state.signals.push(signal)
      await new Promise<void>((resolve) => { state.release = resolve })
    }
  }
}

describe('RepeatingTask', () => {
  beforeEach(() => { vi.useFakeTimers({ now: 0 }) })
  afterEach(() => { vi.useRealTimers() })

  it('runs after each interval, measured from the end of the previous run, never two at once', async () => {
    const run = heldRun()
    const task = new RepeatingTask({ intervalMs: 100 }, run.fn)
    task.start()
    await vi.advanceTimersByTimeAsync(99)
    expect(run.starts).toEqual([])
    await vi.advanceTimersByTimeAsync(1)
    expect(run.starts).toEqual([100])
    await vi.advanceTimersByTimeAsync(500) // the run is still going: no second one
    expect(run.starts).toEqual([100])
    task.runNow()
    expect(run.starts).toEqual([100])
    run.release()
    await vi.advanceTimersByTimeAsync(100)
    expect(run.starts).toEqual([100, 700])
    run.release()
    await task.stop()
  })

  it('runs at start when asked, and keeps to the grid nextDelayMs gives', async () => {
    const starts: number[] = []
    const task = new RepeatingTask({ intervalMs: 100, runAtStart: true, nextDelayMs: () => 100 - (Date.now() % 100) }, async () => {
      starts.push(Date.now())
      await new Promise((resolve) => setTimeout(resolve, 30)) // a run that takes 30 ms does not shift the grid
    })
    task.start()
    expect(starts).toEqual([0])
    await vi.advanceTimersByTimeAsync(350)
    expect(starts).toEqual([0, 100, 200, 300])
    await task.stop()
  })

  it('stop() aborts the signal at once and its promise waits for the run in progress', async () => {
    const run = heldRun()
    const task = new RepeatingTask({ intervalMs: 10, runAtStart: true }, run.fn)
    task.start()
    let stopped = false
    const stopping = task.stop().then(() => { stopped = true })
    expect(run.signals[0]?.aborted).toBe(true)
    expect(task.started).toBe(false)
    await vi.advanceTimersByTimeAsync(100)
    expect(stopped).toBe(false)
    run.release()
    await stopping
    expect(stopped).toBe(true)
    await vi.advanceTimersByTimeAsync(100)
    expect(run.starts).toEqual([0])
  })

  it('reports a failed run to onError (or the logger) and runs again; a failure after stop is not reported', async () => {
    const errors: unknown[] = []
    let calls = 0
    const task = new RepeatingTask({ intervalMs: 10, onError: (err) => { errors.push(err) } }, () => { calls++; throw new Error(`run ${calls}`) })
    task.start()
    await vi.advanceTimersByTimeAsync(20)
    expect(calls).toBe(2)
    expect(errors.map((e) => (e as Error).message)).toEqual(['run 1', 'run 2'])
    await task.stop()

    const logged: Array<Record<string, unknown>> = []
    const logger = { error: (fields: Record<string, unknown>) => { logged.push(fields) } }
    const failing = new RepeatingTask({ name: 'probe', intervalMs: 10, logger }, async (signal) => {
      await new Promise((resolve) => setTimeout(resolve, 5))
      if (signal.aborted) throw new Error('aborted')
      throw new Error('broken')
    })
    failing.start()
    await vi.advanceTimersByTimeAsync(15)
    expect(logged).toEqual([{ err: new Error('broken'), task: 'probe' }])
    await vi.advanceTimersByTimeAsync(11)
    const stopping = failing.stop()
    await vi.advanceTimersByTimeAsync(5)
    await stopping
    expect(logged).toHaveLength(1)
  })

  it('a restart while the last run finishes runs again', async () => {
    const run = heldRun()
    const task = new RepeatingTask({ intervalMs: 10, runAtStart: true }, run.fn)
    task.start()
    const stopping = task.stop()
    task.start()
    run.release()
    await stopping
    await vi.advanceTimersByTimeAsync(0)
    expect(run.starts).toEqual([0, 0])
    expect(run.signals[1]?.aborted).toBe(false)
    run.release()
    await task.stop()
  })

  it('does not keep the process alive', () => {
    vi.useRealTimers()
    const task = new RepeatingTask({ intervalMs: 60_000 }, () => {})
    const spy = vi.spyOn(globalThis, 'setTimeout')
    task.start()
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout
    spy.mockRestore()
    expect(timer.hasRef()).toBe(false)
    void task.stop()
  })
})
