/**
 * The one error this package throws. Callers match on `code` (and `field`), never on message text.
 * None of these is worth retrying: the same bytes fail the same way.
 */

export type ProtocolErrorCode =
  /** Larger than the cap for its message type; nothing was parsed. */
  | 'TOO_LARGE'
  /** Not UTF-8, not JSON, not an object, or an unknown or unexpected `type`. */
  | 'MALFORMED'
  /** Parsed, but a field is missing, unknown, out of range or inconsistent with another. */
  | 'INVALID_FIELD'
  /** A signature is malformed, high-s, by another key, or over other data or another domain. */
  | 'BAD_SIGNATURE'
  /** Past its `expiresAt` at the time given for validation. */
  | 'EXPIRED'

/**
 * The base of gpumesh's error classes: `code` says why (match on it, never on the message), `name` is
 * the class's static `name` (so a subclass declares its name once), and the cause is kept.
 */
export class CodedError<Code extends string> extends Error {
  readonly code: Code

  constructor (code: Code, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

export interface ProtocolErrorOptions {
  cause?: unknown
  /** Path of the offending field, e.g. `requirements.gpuCount`; null when it is the whole message. */
  field?: string | null
}

export class ProtocolError extends CodedError<ProtocolErrorCode> {
  override name = 'ProtocolError'
  readonly field: string | null

  constructor (code: ProtocolErrorCode, message: string, options: ProtocolErrorOptions = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause })
    this.field = options.field ?? null
  }
}

/** True when `err` is a {@link ProtocolError} (also across copies of this package). */
export function isProtocolError (err: unknown): err is ProtocolError {
  return err instanceof Error && err.name === 'ProtocolError'
}
