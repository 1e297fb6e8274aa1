/** Defaults of the daemon's parts that are not configuration keys. */

/** How often accepted leases past their start deadline are expired (their GPUs freed). */
export const EXPIRY_SWEEP_INTERVAL_MS = 5_000
/** How often seen order ids of expired orders are forgotten. */
export const SEEN_ORDERS_PRUNE_INTERVAL_MS = 10 * 60_000
/** A capacity change is published after this pause, so a burst of changes makes one offer. */
export const REPUBLISH_DEBOUNCE_MS = 50
/** Least time between publications prompted by peers subscribing to the offers topic. */
export const NEW_PEER_REPUBLISH_GAP_MS = 5_000
/** The rate-limit window of `leases.proposalsPerMinutePerPeer`. */
export const PROPOSAL_RATE_WINDOW_MS = 60_000
/** Peers whose proposal counts are remembered at once; the oldest window is forgotten beyond it. */
export const PROPOSAL_RATE_MAX_PEERS = 10_000
/** Lease streams open at once per connection (more are reset by libp2p). */
export const LEASE_MAX_INBOUND_STREAMS = 64
/** Time for a proposer to send its proposal plus for the daemon to answer it. */
export const LEASE_HANDLER_TIMEOUT_MS = 10_000
/**
 * net's own per-peer limiter on the lease protocol: a backstop far above the daemon's per-minute budget,
 * so that the daemon's budget (answered with a signed-protocol RATE_LIMITED decision) is what peers see.
 */
export const LEASE_NET_RATE_LIMIT = { points: 1_000, durationMs: 1_000 } as const
/** Errors remembered for `status` (newest last). */
export const MAX_RECENT_ERRORS = 20
/** How far back the dashboard's charts reach (kept in memory, on the probe cadence). */
export const HISTORY_WINDOW_MS = 60 * 60 * 1000
/** Name of the runtime file in the data directory. */
export const PROVIDER_FILE = 'provider.json'
/** Name of the ledger file in the data directory. */
export const LEDGER_FILE = 'ledger.sqlite'
/** Ledger kv key holding the last offer sequence published. */
export const OFFER_SEQUENCE_KEY = 'offers.lastSequence'
/** Job directories live in `<dataDir>/jobs/<leaseId>`. */
export const JOBS_DIR = 'jobs'
/** How often artifacts older than `runner.artifactRetentionSec` are removed. */
export const ARTIFACT_CLEANUP_INTERVAL_MS = 10 * 60_000

/** Held in the data directory while vouchers are redeemed on chain: one transaction queue per key. */
export const SETTLEMENT_LOCK_FILE = 'settlement.lock'
/** How often the daemon looks whether what is unredeemed passed `settlement.autoRedeem.whenUnredeemedAbove`. */
export const AUTO_REDEEM_CHECK_INTERVAL_MS = 30_000

/** How often the docker runner's checks (engine, GPU runtimes) run again after the one at start. */
export const RUNNER_CHECK_INTERVAL_MS = 60_000

/** The software version a member reports to its fleet operator. */
export const PROVIDER_VERSION = '0.1.0'
