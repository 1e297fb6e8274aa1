/** The logger shape every part of this package takes (pino's child loggers fit it). */
export interface SettlementLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

const noop = (): void => {}
export const SILENT_LOGGER: SettlementLogger = { debug: noop, info: noop, warn: noop, error: noop }
