/** Protocol ids and topics. A breaking change to a message bumps the version in its id. */
export const OFFERS_TOPIC = '/gpumesh/offers/1'
export const LEASE_PROTOCOL = '/gpumesh/lease/1.0.0'
export const JOB_PROTOCOL = '/gpumesh/job/1.0.0'
export const ORDER_PROTOCOL = '/gpumesh/order/1.0.0'
export const BOOK_PROTOCOL = '/gpumesh/book/1.0.0'
export const STATUS_PROTOCOL = '/gpumesh/status/1.0.0'

/** The fixed part of every gpumesh EIP-712 domain. */
export const EIP712_DOMAIN_NAME = 'gpumesh'
export const EIP712_DOMAIN_VERSION = '1'

/** The `type` of every top-level wire message. */
export const MESSAGE_TYPES = [
  'offer',
  'order',
  'lease-proposal',
  'lease-decision',
  'job-submit',
  'job-attach',
  'job-event',
  'voucher',
  'terminate',
  'order-result',
  'book-query',
  'book-page',
  'job-reply',
  'artifacts-request',
  'artifacts-header'
] as const
export type MessageType = typeof MESSAGE_TYPES[number]

const KiB = 1024

/** Hard size cap per message type in encoded bytes, checked before any parsing. */
export const MAX_MESSAGE_BYTES: Readonly<Record<MessageType, number>> = {
  offer: 64 * KiB,
  order: 8 * KiB,
  'lease-proposal': 16 * KiB,
  'lease-decision': 16 * KiB,
  'job-submit': 64 * KiB,
  'job-attach': 4 * KiB,
  'job-event': 64 * KiB,
  voucher: 4 * KiB,
  terminate: 4 * KiB,
  'order-result': 32 * KiB,
  'book-query': 4 * KiB,
  /** A page of up to `LIMITS.bookPage` offers; a matcher ends a page early rather than exceed it. */
  'book-page': 512 * KiB,
  'job-reply': 4 * KiB,
  'artifacts-request': 4 * KiB,
  'artifacts-header': 4 * KiB
}

/** The largest of {@link MAX_MESSAGE_BYTES}: the cap when the expected type is not known. */
export const MAX_ANY_MESSAGE_BYTES = Math.max(...Object.values(MAX_MESSAGE_BYTES))

/** Caps on strings and arrays inside messages (characters, entries). */
export const LIMITS = {
  /** Peer ids, GPU classes and UUIDs, regions, short names. */
  shortString: 128,
  /** Multiaddrs, model names, reasons, images, lease states. */
  string: 256,
  /** Human-readable notes and rejection messages. */
  message: 1024,
  /** One log line of a job event. */
  logLine: 16 * KiB,
  /** The job command and each environment value. */
  command: 4 * KiB,
  addresses: 16,
  offeredGpuKinds: 32,
  leaseGpus: 256,
  classes: 32,
  operators: 32,
  args: 256,
  envEntries: 256,
  /** Offers in one book page. */
  bookPage: 100,
  /** Mismatch reasons and declined proposals in a no-match explanation. */
  explanationEntries: 32,
  /** A provider observation's `observedSec` (about 100 years). */
  maxObservedSec: 100 * 366 * 86_400,
  /** A provider observation's `interruptions`. */
  maxInterruptions: 1_000_000_000
} as const

/**
 * Raw binary frames on `JOB_PROTOCOL` (bundle upload after a `job-submit`, artifacts download after an
 * `artifacts-header`) carry at most this many bytes each.
 */
export const JOB_DATA_FRAME_BYTES = 256 * KiB

/** Largest frame either side accepts on `JOB_PROTOCOL`: a data frame, or any job message. */
export const JOB_MAX_FRAME_BYTES = Math.max(JOB_DATA_FRAME_BYTES, 64 * KiB)

/** How many public keys the fast verifier remembers (key → address derivation). */
export const VERIFY_KEY_CACHE_SIZE = 4096

/** Largest value an EIP-712 uint64 field can hold. */
export const MAX_UINT64 = (1n << 64n) - 1n
/** Largest value an EIP-712 uint256 field can hold. */
export const MAX_UINT256 = (1n << 256n) - 1n
