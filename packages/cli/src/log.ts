import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino'

/**
 * The CLI's loggers: JSON lines (for journald, files, log shippers), or one readable line per record
 * for a person at a terminal: `12:03:04 info  offers: offer published sequence=3`.
 */

export interface CliLoggerOptions {
  /** JSON lines when true, readable lines when false. */
  json: boolean
  level?: string
  /** Fields on every JSON record (readable lines leave them out). */
  base?: Record<string, unknown> | null
  /** Where lines go. */
  write: (line: string) => void
  /** For JSON: a pino destination to use instead of `write` (e.g. a synchronous fd 2). */
  destination?: DestinationStream
}

export function createCliLogger (options: CliLoggerOptions): Logger {
  const level = options.level ?? 'info'
  if (options.json) {
    const settings: LoggerOptions = { level, base: options.base ?? null }
    return pino(settings, options.destination ?? { write: options.write })
  }
  return pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, { write: (line: string) => { options.write(readableLine(line)) } })
}

/** One pino JSON record as a readable line; a line that is not JSON passes through. */
export function readableLine (line: string): string {
  try {
    const { time, level, msg, module, ...rest } = JSON.parse(line) as Record<string, unknown>
    const name = pino.levels.labels[Number(level)] ?? String(level)
    const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
    return `${String(time).slice(11, 19)} ${name.padEnd(5)} ${module != null ? `${String(module)}: ` : ''}${String(msg)}${extra.length > 0 ? ` ${extra}` : ''}\n`
  } catch {
    return line
  }
}
