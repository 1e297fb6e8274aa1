/**
 * @gpumesh/renter — the renter SDK: job files, bundles, orders and leases, the lease session from
 * upload to artifacts, local lease records, vouchers within a budget, and reading a matcher's book to
 * quote a training run or preview an order. No I/O beyond what its arguments name (files, a libp2p
 * node); nothing here touches `process`.
 */
export { PaymentPolicy, ReportRefusedError, type PaymentPolicyOptions, type ReportRefusalCode, type VoucherDue } from './payment-policy.js'
export * from './constants.js'
export * from './errors.js'
export { parseJobFile, jobBudget, type JobFile } from './job-file.js'
export { buildBundle, extractArtifacts, readBundle, sha256File, type BuildBundleOptions, type BuiltBundle, type ExtractedArtifacts } from './bundle.js'
export {
  checkTerms, describeLeaseRejection, describeMatcherRefusal, placeOrder, proposeToProvider, signJobOrder,
  type GrantedLease, type PlaceOrderOptions, type ProposeOptions, type SignJobOrderOptions
} from './order-client.js'
export {
  JOB_CLIENT_DEFAULTS, JobClientError, attachJob, cancelJob, downloadArtifacts, providerTargets, submitJob,
  type JobClientOptions, type JobFollowResult
} from './job-client.js'
export {
  FINAL_RECORD_STATES, LOCAL_LEASE_STATES, applyOutcome, attachStartedAt, newLeaseRecord, recordFollower, recordUsage,
  type LocalLeaseRecord, type LocalLeaseState
} from './lease-record.js'
export { LeaseStore } from './lease-store.js'
export { runLeasedJob, type JobRunSummary, type ReattachAttempt, type RunLeasedJobOptions } from './lease-session.js'
export { describeJobRefusal } from './lease-session-text.js'
export { DEFAULT_BOOK_MAX_PAGES, readBook, type BookRead, type ReadBookOptions } from './book-client.js'
export {
  ADAM_MIXED_PRECISION_BYTES_PER_PARAM, CHINCHILLA_TOKENS_PER_PARAM, DEFAULT_MFU, DEFAULT_OFFLINE_GPUS, MFU_WARNING_ABOVE,
  buildQuote, chinchillaTokens, costOf, expectedLostWallMs, gpuHoursFor, gpuMillisecondsOf, gpusForDeadline, parseCount,
  shardedStateBytes, trainingFlops, trainingStateBytes,
  type ClassPeak, type ClassQuote, type LostWork, type OfferedCapacity, type Quote, type QuoteInput, type QuoteMarket, type ReferencePrice
} from './quote.js'
export { newestReferencePriceFile, parseReferencePrices, type ReferencePriceFile } from './reference-prices.js'
export { previewOrder, type OrderPreview, type PreviewCandidate, type PreviewMismatch } from './order-preview.js'
