/** Defaults of the renter SDK. Every one can be overridden where it is used. */

/**
 * How long a renter waits for a matcher's answer to an order. The matcher's own deadline is
 * `maxProposals × proposalTimeoutMs + 5 s` (20 s by default), so this leaves it room to answer.
 */
export const DEFAULT_ORDER_TIMEOUT_MS = 25_000

/** How long a renter waits for a provider's answer to a direct lease proposal. */
export const DEFAULT_PROPOSAL_TIMEOUT_MS = 10_000

/** An order is valid this long after it is signed; matchers and providers refuse it afterwards. */
export const DEFAULT_ORDER_TTL_MS = 2 * 60_000

/** Attempts at sending one order when the matcher times out or is busy (resending is safe). */
export const DEFAULT_ORDER_ATTEMPTS = 2

/** Decimals of the payment token when the job file does not say. */
export const DEFAULT_TOKEN_DECIMALS = 6

/** Chain id when the job file does not say (a local devnet). */
export const DEFAULT_CHAIN_ID = 31337n

/** Largest job file read, in bytes. */
export const MAX_JOB_FILE_BYTES = 256 * 1024

/** Largest artifact archive extracted (uncompressed bytes), to refuse a zip bomb from a provider. */
export const MAX_ARTIFACT_BYTES = 16 * 1024 * 1024 * 1024

/** How often a running lease's local record is rewritten at most (vouchers arrive every interval). */
export const RECORD_WRITE_INTERVAL_MS = 1_000

/**
 * How long a renter keeps trying to re-attach to a job whose provider stopped answering (a daemon
 * restarting after a crash is back in seconds; its job keeps running meanwhile).
 */
export const DEFAULT_REATTACH_FOR_MS = 120_000

/** First wait before re-attaching; each further wait doubles, up to REATTACH_MAX_DELAY_MS. */
export const REATTACH_FIRST_DELAY_MS = 500

export const REATTACH_MAX_DELAY_MS = 8_000
