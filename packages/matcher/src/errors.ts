/**
 * Reason codes the matcher answers with on the order and book protocols (as net error envelopes, so a
 * client sees `RequestError { code: 'REMOTE_ERROR', remoteCode }`), and the matcher's own error class.
 */

import { CodedError } from '@gpumesh/protocol'

/** Why an order or a book query was refused. Match on these, never on message text. */
export const MATCHER_REQUEST_ERROR_CODES = [
  /** Not UTF-8 JSON of the expected type (protocol `MALFORMED`). */
  'MALFORMED',
  /** A field is missing, unknown or out of range (protocol `INVALID_FIELD`); the message names it. */
  'INVALID_FIELD',
  /** Over the message type's size cap. */
  'TOO_LARGE',
  /** The order's signature is not the renter's. */
  'BAD_SIGNATURE',
  /** The order expired before it arrived. */
  'EXPIRED',
  /** The order names another peer as its renter than the one that sent it. */
  'NOT_RENTER',
  /** The same order id is already taken by a different order. */
  'DUPLICATE_ORDER',
  /** Too many orders are being matched; try again shortly. */
  'BUSY',
  /** The matcher is stopping. */
  'STOPPING'
] as const
export type MatcherRequestErrorCode = typeof MATCHER_REQUEST_ERROR_CODES[number]

export type MatcherErrorCode = 'NOT_STARTED' | 'START_FAILED'

/** Misuse of the matcher service itself (not a peer's fault). */
export class MatcherError extends CodedError<MatcherErrorCode> {
  static override name = 'MatcherError'
}
