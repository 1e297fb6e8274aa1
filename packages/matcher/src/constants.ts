/** Defaults of the matcher service. Every option of `MatcherOptions` that takes one of these can override it. */
import type { RateLimitOptions } from '@gpumesh/net'

/** Providers proposed to, in rank order, before the renter gets a no-match. */
export const DEFAULT_MAX_PROPOSALS = 3
/** One proposal's deadline: dial, the provider's decision, the answer. */
export const DEFAULT_PROPOSAL_TIMEOUT_MS = 5_000
/** How often expired offers leave the book and finished orders are forgotten. */
export const DEFAULT_PRUNE_INTERVAL_MS = 5_000
/**
 * Offers claiming to live longer than DEFAULT_MAX_OFFER_LIFETIME_MS (24 h) are ignored, and so are
 * offers issued more than DEFAULT_MAX_CLOCK_SKEW_MS (60 s) in the future: the gossip judgement's own
 * defaults, shared with every relaying node.
 */
export { DEFAULT_MAX_CLOCK_SKEW_MS, DEFAULT_MAX_OFFER_LIFETIME_MS } from '@gpumesh/protocol'
/** Providers the book holds at most; offers of new providers are ignored beyond it. */
export const DEFAULT_MAX_OFFERS = 100_000
/** Orders being matched at once; more are answered `BUSY`. */
export const DEFAULT_MAX_CONCURRENT_ORDERS = 64
/** Order answers kept (by order id, until the order expires) so a retried order gets the same answer. */
export const DEFAULT_MAX_REMEMBERED_ORDERS = 10_000
/** Decimals of the token prices are quoted in, for explanations. */
export const DEFAULT_TOKEN_DECIMALS = 6
/** Book page size when a query does not say (a query may ask for up to `LIMITS.bookPage`). */
export const DEFAULT_BOOK_PAGE_LIMIT = 50
/** Orders per renter peer per window. */
export const DEFAULT_ORDER_RATE_LIMIT: RateLimitOptions = { points: 10, durationMs: 1_000 }
/** Book queries per peer per window. */
export const DEFAULT_BOOK_RATE_LIMIT: RateLimitOptions = { points: 20, durationMs: 1_000 }
/** Providers pinged per prune tick to refresh latency estimates (only already-connected ones). */
export const DEFAULT_PINGS_PER_TICK = 16
/** Weight of a new round-trip sample in the latency estimate (exponential moving average). */
export const LATENCY_SMOOTHING = 0.3
