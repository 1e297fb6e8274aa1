import { CodedError, jsonReplacer } from '@gpumesh/protocol'
import { ListenError } from '@gpumesh/net'

/** One bad configuration key: where it is, what it held and what it should hold. */
export interface ConfigIssue {
  path: string
  value: unknown
  expected: string
  /** Where the value came from when known, e.g. an environment variable's name. */
  source?: string
}

/** The configuration is invalid; the daemon does not start. The message names every bad key. */
export class ConfigError extends Error {
  static override readonly name = 'ConfigError'
  override readonly name = 'ConfigError'
  readonly code = 'BAD_CONFIG'
  readonly issues: ConfigIssue[]

  constructor (issues: ConfigIssue[], options?: ErrorOptions) {
    super(ConfigError.describe(issues), options)
    this.issues = issues
  }

  static describe (issues: ConfigIssue[]): string {
    const lines = issues.map((issue) => {
      const where = issue.source != null ? ` (from ${issue.source})` : ''
      const value = issue.value === undefined ? '' : ` is ${JSON.stringify(issue.value, jsonReplacer)} but`
      return `${issue.path}${where}${value} must be ${issue.expected}`
    })
    return `The configuration is invalid: ${lines.join('; ')}. Fix it and start again.`
  }
}

/** The daemon cannot start for a reason the operator can fix; the message says what and how. */
export class ProviderStartError extends CodedError<'DATA_DIR_IN_USE' | 'API_LISTEN_FAILED' | 'BAD_FLEET_MEMBERSHIP' | 'PROCESS_RUNNER_UNSAFE' | 'DATA_DIR_UNUSABLE'> {
  static override readonly name = 'ProviderStartError'
}

/** Errors whose message is a sentence for the operator (no stack needed): bad config, busy ports, a taken data directory. */
export function isOperatorError (err: unknown): boolean {
  return err instanceof ConfigError || err instanceof ProviderStartError || err instanceof ListenError
}
