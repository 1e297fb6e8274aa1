import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { jsonReplacer, validateJobEvent } from '@gpumesh/protocol'
import type { JobEvent } from '@gpumesh/protocol'

/**
 * `<jobDir>/events.jsonl`: every event of a job, one JSON line each, appended before it is delivered
 * to anyone, so a renter never saw an event a restarted daemon does not know. A line is the event's
 * wire form (as `encodeJobEvent` writes it) plus, for a `log` event, `logEnd`: the byte offset in its
 * log file just past what it carries, where a restarted daemon resumes tailing.
 */
export const EVENTS_FILE = 'events.jsonl'

/** One stored line, decoded. */
export interface StoredJobEvent {
  event: JobEvent
  /** For `log` events: the offset in `logs/<stream>.log` just past this piece. */
  logEnd?: number
}

/** The line for one event (with its trailing newline). */
export function encodeStoredEvent (event: JobEvent, logEnd?: number): string {
  return JSON.stringify(logEnd === undefined ? event : { ...event, logEnd }, jsonReplacer) + '\n'
}

/** Parses one line; null for a line that is not a valid stored event (a torn write). */
export function decodeStoredEvent (line: string): StoredJobEvent | null {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null
  const { logEnd, ...rest } = value as { logEnd?: unknown }
  try {
    const event = validateJobEvent(rest)
    return typeof logEnd === 'number' && Number.isSafeInteger(logEnd) && logEnd >= 0 ? { event, logEnd } : { event }
  } catch {
    return null
  }
}

/** Streams the stored events of a file in order (bounded memory); lines that do not parse are skipped; no file: nothing. */
export async function * readStoredEvents (file: string, signal?: AbortSignal): AsyncGenerator<StoredJobEvent> {
  const input = createReadStream(file, { encoding: 'utf8', ...(signal !== undefined ? { signal } : {}) })
  const lines = createInterface({ input, crlfDelay: Infinity })
  try {
    for await (const line of lines) {
      if (line === '') continue
      const stored = decodeStoredEvent(line)
      if (stored !== null) yield stored
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  } finally {
    lines.close()
    input.destroy()
  }
}

/**
 * Makes the file safe to append to after a kill: a last line cut short by the crash (it does not
 * parse) is cut off, a last valid line without its newline gets one. Returns false when there is no file.
 */
export async function repairEventFile (file: string): Promise<boolean> {
  let size: number
  try {
    size = (await stat(file)).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  if (size === 0) return true
  const fh = await open(file, 'r+')
  try {
    // The last line is at most one event (64 KiB on the wire) plus logEnd; read back far enough to find its start.
    const tailBytes = Math.min(size, 256 * 1024)
    const buf = Buffer.alloc(tailBytes)
    await fh.read(buf, 0, tailBytes, size - tailBytes)
    if (buf[tailBytes - 1] === 0x0a) return true
    const lastNewline = buf.lastIndexOf(0x0a)
    const lineStart = size - tailBytes + lastNewline + 1
    const last = buf.subarray(lastNewline + 1).toString('utf8')
    if (decodeStoredEvent(last) !== null) await fh.write('\n', size)
    else await fh.truncate(lineStart)
  } finally {
    await fh.close()
  }
  return true
}
