import { open, readdir } from 'node:fs/promises'
import { LIMITS } from '@gpumesh/protocol'
import { repeatingTask, type RepeatingTask } from './repeating-task.js'
import type { JobPaths } from './job-dir.js'

export interface TailEvents {
  line: (stream: 'stdout' | 'stderr', text: string) => void
  checkpoint: (name: string) => void
}

/** Bytes read per file per poll, so one chatty job cannot stall the daemon. */
const READ_CHUNK = 256 * 1024

class FileTail {
  readonly #path: string
  #position = 0
  #partial = ''
  constructor (path: string) { this.#path = path }

  /** New complete lines since the last read; `flush` also returns a last unterminated line. */
  async read (flush: boolean): Promise<string[]> {
    let text = ''
    try {
      const fh = await open(this.#path, 'r')
      try {
        for (;;) {
          const buf = Buffer.alloc(READ_CHUNK)
          const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, this.#position)
          if (bytesRead === 0) break
          this.#position += bytesRead
          text += buf.subarray(0, bytesRead).toString('utf8')
          if (!flush) break
        }
      } finally {
        await fh.close()
      }
    } catch {
      // Not there yet.
    }
    const all = this.#partial + text
    const lines = all.split('\n')
    this.#partial = lines.pop() ?? ''
    if (flush && this.#partial.length > 0) { lines.push(this.#partial); this.#partial = '' }
    const out: string[] = []
    for (const line of lines) {
      const clean = line.endsWith('\r') ? line.slice(0, -1) : line
      for (let i = 0; i === 0 || i < clean.length; i += LIMITS.logLine) out.push(clean.slice(i, i + LIMITS.logLine))
    }
    // A partial line beyond the cap is emitted in pieces rather than held forever.
    while (this.#partial.length > LIMITS.logLine) {
      out.push(this.#partial.slice(0, LIMITS.logLine))
      this.#partial = this.#partial.slice(LIMITS.logLine)
    }
    return out
  }
}

/**
 * Follows a job's log files and checkpoint directory by polling (the job writes to files, not pipes,
 * so it outlives the daemon), and reports complete lines and new checkpoint files in order.
 */
export class JobLogTailer {
  readonly #stdout: FileTail
  readonly #stderr: FileTail
  readonly #paths: JobPaths
  readonly #events: TailEvents
  readonly #task: RepeatingTask
  readonly #checkpoints = new Set<string>()
  #busy: Promise<void> = Promise.resolve()

  constructor (paths: JobPaths, events: TailEvents, pollMs = 200) {
    this.#paths = paths
    this.#events = events
    this.#stdout = new FileTail(paths.stdoutLog)
    this.#stderr = new FileTail(paths.stderrLog)
    this.#task = repeatingTask(async () => { await this.poll(false) }, pollMs)
  }

  start (): void { this.#task.start() }
  stop (): void { this.#task.stop() }

  /** Reads what is new; `flush` reads to the end and emits unterminated last lines (job ended). */
  async poll (flush: boolean): Promise<void> {
    const run = this.#busy.then(async () => {
      for (const line of await this.#stdout.read(flush)) this.#events.line('stdout', line)
      for (const line of await this.#stderr.read(flush)) this.#events.line('stderr', line)
      let names: string[] = []
      try { names = (await readdir(this.#paths.checkpoints)).sort() } catch { /* not yet */ }
      for (const name of names) {
        if (this.#checkpoints.has(name)) continue
        this.#checkpoints.add(name)
        this.#events.checkpoint(name)
      }
    })
    this.#busy = run.catch(() => {})
    await run
  }
}
