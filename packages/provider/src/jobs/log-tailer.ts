import { open, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { LIMITS } from '@gpumesh/protocol'
import { RepeatingTask } from '@gpumesh/net'
import type { JobPaths } from './job-dir.js'

export interface TailEvents {
  /** `end`: the byte offset in the stream's log file just past this line (or piece of one). */
  line: (stream: 'stdout' | 'stderr', text: string, end: number) => void
  checkpoint: (name: string) => void
}

/** Where a tailer starts: after what an earlier daemon already sent (see JobEventLog.load). */
export interface TailStart {
  stdout?: number
  stderr?: number
  /** Checkpoint files already announced. */
  checkpoints?: Iterable<string>
}

/** Bytes read per file per poll, so one chatty job cannot stall the daemon. */
const READ_CHUNK = 256 * 1024
const utf8 = new TextDecoder('utf-8')

/** The length of the first piece of `bytes` of at most `max` bytes, not cutting a UTF-8 sequence. */
function pieceLength (bytes: Buffer, max: number): number {
  if (bytes.length <= max) return bytes.length
  let cut = max
  while (cut > 0 && ((bytes[cut] as number) & 0xc0) === 0x80) cut--
  return cut === 0 ? max : cut
}

class FileTail {
  readonly #path: string
  /** Bytes sent as lines so far; `#pending` holds what was read after them. */
  #position: number
  #pending: Buffer = Buffer.alloc(0)
  constructor (path: string, position: number) { this.#path = path; this.#position = position }

  /**
   * New complete lines since the last read, each with the offset just past it; `flush` also returns a
   * last unterminated line. Lines are split on bytes into pieces of at most LIMITS.logLine bytes (never
   * inside a UTF-8 sequence), so each piece fits an event and has an exact offset to resume from.
   */
  async read (flush: boolean): Promise<Array<{ text: string, end: number }>> {
    const chunks: Buffer[] = [this.#pending]
    let readAt = this.#position + this.#pending.length
    try {
      const fh = await open(this.#path, 'r')
      try {
        for (;;) {
          const buf = Buffer.alloc(READ_CHUNK)
          const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, readAt)
          if (bytesRead === 0) break
          readAt += bytesRead
          chunks.push(buf.subarray(0, bytesRead))
          if (!flush) break
        }
      } finally {
        await fh.close()
      }
    } catch {
      // Not there yet.
    }
    let pending = Buffer.concat(chunks)
    const out: Array<{ text: string, end: number }> = []
    const emit = (bytes: Buffer, consumed: number): void => {
      // Pieces of one line; the last one also consumes the line's end (\r\n or \n).
      let offset = 0
      do {
        const length = pieceLength(bytes.subarray(offset), LIMITS.logLine)
        offset += length
        out.push({ text: utf8.decode(bytes.subarray(offset - length, offset)), end: this.#position + (offset === bytes.length ? consumed : offset) })
      } while (offset < bytes.length)
      this.#position += consumed
    }
    for (;;) {
      const newline = pending.indexOf(0x0a)
      if (newline >= 0) {
        const line = pending.subarray(0, newline > 0 && pending[newline - 1] === 0x0d ? newline - 1 : newline)
        emit(line, newline + 1)
        pending = pending.subarray(newline + 1)
        continue
      }
      if (pending.length > LIMITS.logLine) {
        // A partial line beyond the cap is sent in pieces rather than held forever.
        const length = pieceLength(pending, LIMITS.logLine)
        emit(pending.subarray(0, length), length)
        pending = pending.subarray(length)
        continue
      }
      if (flush && pending.length > 0) {
        emit(pending, pending.length)
        pending = Buffer.alloc(0)
      }
      break
    }
    this.#pending = Buffer.from(pending)
    return out
  }
}

/**
 * Follows a job's log files and checkpoint directory by polling (the job writes to files, not pipes,
 * so it outlives the daemon), and reports complete lines and new checkpoint files in order. A tailer
 * that takes over from an earlier daemon starts at the offsets and checkpoints that one already sent.
 */
export class JobLogTailer {
  readonly #stdout: FileTail
  readonly #stderr: FileTail
  readonly #paths: JobPaths
  readonly #events: TailEvents
  readonly #task: RepeatingTask
  readonly #checkpoints: Set<string>
  #busy: Promise<void> = Promise.resolve()

  constructor (paths: JobPaths, events: TailEvents, pollMs = 200, from: TailStart = {}) {
    this.#paths = paths
    this.#events = events
    this.#stdout = new FileTail(paths.stdoutLog, from.stdout ?? 0)
    this.#stderr = new FileTail(paths.stderrLog, from.stderr ?? 0)
    this.#checkpoints = new Set(from.checkpoints ?? [])
    this.#task = new RepeatingTask({ intervalMs: pollMs }, async () => { await this.poll(false) })
  }

  start (): void { this.#task.start() }
  stop (): void { void this.#task.stop() }

  /** Reads what is new; `flush` reads to the end and emits unterminated last lines (job ended). */
  async poll (flush: boolean): Promise<void> {
    const run = this.#busy.then(async () => {
      for (const { text, end } of await this.#stdout.read(flush)) this.#events.line('stdout', text, end)
      for (const { text, end } of await this.#stderr.read(flush)) this.#events.line('stderr', text, end)
      let names: string[] = []
      try { names = await readdir(this.#paths.checkpoints) } catch { /* not yet */ }
      // Several new files in one poll are reported in the order they were written (ckpt-8 before
      // ckpt-10), so the last checkpoint notice names the newest.
      const fresh = await Promise.all(names.filter((n) => !this.#checkpoints.has(n)).map(async (name) => {
        const written = await stat(join(this.#paths.checkpoints, name)).then((st) => st.mtimeMs, () => null)
        return { name, written }
      }))
      fresh.sort((a, b) => (a.written ?? 0) - (b.written ?? 0) || a.name.localeCompare(b.name, 'en', { numeric: true }))
      for (const { name, written } of fresh) {
        if (written === null) continue // gone again before it could be looked at
        this.#checkpoints.add(name)
        this.#events.checkpoint(name)
      }
    })
    this.#busy = run.catch(() => {})
    await run
  }
}
