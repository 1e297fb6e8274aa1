/**
 * @gpumesh/matcher — the matcher: an order book fed by gossip, order intake, the matching engine,
 * proposals with fallback, and book serving. The pure core (book, matching, explanations, provider
 * records) is exported beside the service so it can be used and tested without a network.
 */
export { ClassSummary, DEFAULT_LIST_LIMIT, OrderBook, PriceCursor, compareComputeCapability, compareEntries, parseComputeCapability } from './order-book.js'
export type { BookEntry, BookFilters, BookRecord, ListOptions, ListedOffer, UpsertResult } from './order-book.js'
export { MISMATCH_REASONS, entryMismatch, findCandidates, findCandidatesLinear, prepareOrder } from './matching.js'
export type { Candidate, MatchOptions, MismatchReason, PreparedOrder, ProviderScores } from './matching.js'
export { DEFAULT_TOKEN_DECIMALS, explainNoMatch } from './explain.js'
export type { ExplainOptions, NoMatchExplanation, ReasonCount } from './explain.js'
export { NEUTRAL_SCORE, ProviderRecords } from './provider-record.js'
export type { ProviderRecord } from './provider-record.js'
