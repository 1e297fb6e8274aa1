/**
 * What a command may touch of the process, passed in so commands can be run in tests without one:
 * the CLI binary hands in the real process; nothing below the CLI sees it.
 */
export interface CommandContext {
  env: Record<string, string | undefined>
  cwd: string
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Aborted on SIGINT/SIGTERM; long-running commands stop cleanly when it fires. */
  signal: AbortSignal
  /** True when stdin is a terminal (for password prompts). */
  interactive: boolean
  /** True when stderr is a terminal: logs are readable lines there, JSON lines elsewhere. */
  stderrIsTerminal?: boolean
}

/** One subcommand: `run` returns the exit code. */
export interface Command {
  name: string
  summary: string
  usage: string
  run: (argv: string[], ctx: CommandContext) => Promise<number>
}
