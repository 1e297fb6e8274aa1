/**
 * Error classes of @gpumesh/net. Match them by `name` and `code`, never by message text.
 * `retryable` tags what may succeed when tried again (a timeout, a reset) apart from what will not.
 */

/** Why a request failed, seen from the client. A remote's own reason is in `remoteCode`. */
export type RequestErrorCode =
  | 'TIMEOUT'
  | 'TOO_LARGE'
  | 'REMOTE_ERROR'
  | 'DIAL_FAILED'
  | 'ABORTED'
  | 'PROTOCOL_ERROR'
  | 'STREAM_RESET'

/**
 * Reason codes a handler sends back. The library itself answers with the ones listed; a handler may
 * throw a `HandlerError` with any other upper-case code of its own (`'LEASE_NOT_FOUND'`).
 */
export type RemoteErrorCode =
  | 'TOO_LARGE'
  | 'RATE_LIMITED'
  | 'TIMEOUT'
  | 'INTERNAL'
  | 'BAD_REQUEST'
  | (string & {})

const RETRYABLE_REMOTE: ReadonlySet<string> = new Set(['RATE_LIMITED', 'TIMEOUT', 'INTERNAL'])

export interface RequestErrorOptions {
  remoteCode?: RemoteErrorCode
  cause?: unknown
}

/** A `request()` failed. */
export class RequestError extends Error {
  static override name = 'RequestError'
  override name = 'RequestError'
  readonly code: RequestErrorCode
  /** Set when `code` is `'REMOTE_ERROR'`: the reason code the remote handler answered with. */
  readonly remoteCode: RemoteErrorCode | undefined
  readonly retryable: boolean

  constructor (code: RequestErrorCode, message: string, options: RequestErrorOptions = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.remoteCode = options.remoteCode
    this.retryable = code === 'TIMEOUT' || code === 'DIAL_FAILED' || code === 'STREAM_RESET' ||
      (code === 'REMOTE_ERROR' && options.remoteCode != null && RETRYABLE_REMOTE.has(options.remoteCode))
  }
}

/**
 * Thrown by a request handler to answer with a reason code of its choosing. The code and message go on
 * the wire; any other exception is answered as `INTERNAL` with a generic message (details stay in the
 * local log).
 */
export class HandlerError extends Error {
  static override name = 'HandlerError'
  override name = 'HandlerError'
  readonly code: RemoteErrorCode

  constructor (code: RemoteErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.code = code
  }
}

export type FrameStreamErrorCode =
  | 'TOO_LARGE'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'STREAM_RESET'
  | 'PROTOCOL_ERROR'
  | 'CLOSED'
  | 'DIAL_FAILED'

/** Opening, reading from or writing to a frame stream failed. */
export class FrameStreamError extends Error {
  static override name = 'FrameStreamError'
  override name = 'FrameStreamError'
  readonly code: FrameStreamErrorCode
  readonly retryable: boolean

  constructor (code: FrameStreamErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.retryable = code === 'TIMEOUT' || code === 'STREAM_RESET' || code === 'DIAL_FAILED'
  }
}

export type PublishErrorCode = 'TOO_LARGE' | 'NO_PEERS' | 'DUPLICATE' | 'NOT_STARTED' | 'FAILED'

/** A gossip `publish()` failed; unlike gossipsub itself, never silently. */
export class PublishError extends Error {
  static override name = 'PublishError'
  override name = 'PublishError'
  readonly code: PublishErrorCode
  readonly retryable: boolean

  constructor (code: PublishErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.retryable = code === 'NO_PEERS' || code === 'FAILED'
  }
}

/** A key could not be decoded or is not an Ed25519 peer key. */
export class PeerKeyError extends Error {
  static override name = 'PeerKeyError'
  override name = 'PeerKeyError'
  readonly code = 'INVALID_PEER_KEY'

  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause })
  }
}

/** The node could not listen on one or more of its configured addresses. */
export class ListenError extends Error {
  static override name = 'ListenError'
  override name = 'ListenError'
  readonly code = 'LISTEN_FAILED'
  /** Each address that failed and why, in plain words. */
  readonly failures: ReadonlyArray<{ address: string, reason: string }>

  constructor (failures: Array<{ address: string, reason: string }>, options: { cause?: unknown } = {}) {
    const list = failures.map((f) => `${f.address} (${f.reason})`).join(', ')
    super(`Cannot listen on ${list === '' ? 'the configured addresses' : list}. Change the listen addresses (network.listen or --listen; /ip4/0.0.0.0/tcp/0 takes any free port) or stop what holds them.`, { cause: options.cause })
    this.failures = failures
  }
}

/** Plain words for a socket error code met when listening. */
export function listenReason (code: string | undefined, fallback: string): string {
  switch (code) {
    case 'EADDRINUSE': return 'the port is already in use, perhaps by another gpumesh process'
    case 'EADDRNOTAVAIL': return 'this machine has no such IP address'
    case 'EACCES': return 'permission denied: ports below 1024 need privileges'
    default: return fallback
  }
}
