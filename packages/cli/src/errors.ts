/**
 * An error meant for the person at the terminal: `message` is a sentence saying what went wrong and
 * what to do. `exitCode` is what the process exits with (2: usage or config, 1: anything else,
 * 3: a GPU tool failed).
 */
export class CliError extends Error {
  static override readonly name = 'CliError'
  override readonly name = 'CliError'
  readonly code: string
  readonly exitCode: number

  constructor (code: string, message: string, options?: ErrorOptions & { exitCode?: number }) {
    super(message, options)
    this.code = code
    this.exitCode = options?.exitCode ?? 1
  }
}

/** Exit codes of the gpumesh command. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  GPU_TOOL_FAILED: 3
} as const
