/**
 * @gpumesh/matcher — the matcher: an order book fed by gossip, order intake, the matching engine,
 * proposals with fallback, and book serving. The pure core (book, matching, explanations, provider
 * records) is exported beside the service so it can be used and tested without a network.
 */
export { createMatcher } from './matcher.js'
export type { Matcher, MatcherComponents, MatcherOptions } from './matcher.js'
export { judgeOffer } from './offer-intake.js'
export { FleetRevocations, MAX_FLEET_REVOCATIONS } from './fleet-revocations.js'
export type { OfferJudgement, OfferVerdict, OfferVerdictReason } from './offer-intake.js'
export { dialTarget, termsMismatch } from './proposer.js'
export { toBookFilters } from './book-service.js'
export { LatencyEstimates } from './latency.js'
export { MATCHER_REQUEST_ERROR_CODES, MatcherError } from './errors.js'
export type { MatcherErrorCode, MatcherRequestErrorCode } from './errors.js'
export * from './constants.js'
export { ClassSummary, DEFAULT_LIST_LIMIT, EntryList, NO_REGION, OrderBook, PriceCursor, compareComputeCapability, compareEntries, freeTier, parseComputeCapability } from './order-book.js'
export type { BookEntry, BookFilters, BookRecord, ListOptions, ListedOffer, UpsertResult } from './order-book.js'
export { MISMATCH_REASONS, entryMismatch, findCandidates, findCandidatesLinear, prepareOrder } from './matching.js'
export type { Candidate, MatchOptions, MismatchReason, PreparedOrder, ProviderScores } from './matching.js'
export { explainNoMatch } from './explain.js'
export type { ExplainOptions, NoMatchExplanation, ReasonCount } from './explain.js'
export { NEUTRAL_SCORE, ProviderRecords } from './provider-record.js'
export type { ProviderRecord } from './provider-record.js'
