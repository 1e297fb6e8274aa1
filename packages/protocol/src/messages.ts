/**
 * Every message of the lease life cycle, as decoded and validated values.
 *
 * Wire form: UTF-8 JSON, one object per message, with a `type` field naming it. On the wire a bigint is
 * a decimal string, bytes are lowercase 0x-hex, addresses are 0x-hex (compared case-insensitively,
 * emitted checksummed), times are integers in Unix milliseconds. Decoding is always followed by
 * validation (see codec.ts); nothing below is trusted until it passed both.
 */

/** 0x-prefixed, 20-byte Ethereum address, checksummed once validated. */
export type Address = `0x${string}`
/** 0x-prefixed lowercase hex, 32 bytes. */
export type Bytes32 = `0x${string}`
/** 0x-prefixed lowercase hex of any length. */
export type Hex = `0x${string}`

/**
 * A signature by a payment key. It carries the signer's compressed secp256k1 public key so that
 * verifiers can check it with native crypto instead of recovering the key in JavaScript: the verifier
 * derives the address from `publicKey`, requires it to equal the address the message claims, requires
 * a low `s`, and verifies (r, s) over the EIP-712 digest.
 */
export interface PaymentSignature {
  /** 33-byte compressed secp256k1 public key. */
  publicKey: Hex
  /** 65 bytes: r ‖ s ‖ v (v is 27 or 28), as Ethereum wallets produce. */
  signature: Hex
}

/** The EIP-712 domain: `{ name: "gpumesh", version: "1", chainId, verifyingContract }`. */
export interface Eip712Domain {
  chainId: bigint
  /** The escrow contract, or the zero address for off-chain settlement. */
  verifyingContract: Address
}

/** The payment key vouches for the libp2p peer id: nobody can advertise another's payout address. */
export interface PeerBinding {
  peerId: string
  payment: Address
  proof: PaymentSignature
}

/** An operator's payment key vouches for one provider node of its fleet until `expiresAt`. */
export interface FleetMembership {
  operator: Address
  member: Address
  peerId: string
  expiresAt: number
  proof: PaymentSignature
}

export type GpuVendor = 'nvidia' | 'amd'

/** One kind of GPU a provider sells: GPUs of one class on one host are interchangeable for an offer. */
export interface OfferedGpus {
  /** Model class, e.g. `H100-SXM-80GB`, or `unknown`. */
  class: string
  vendor: GpuVendor
  memoryMiB: number
  /** e.g. "9.0"; null when the vendor has no such notion (AMD). */
  computeCapability: string | null
  /** GPUs of this class free for a new lease right now. */
  countFree: number
  countTotal: number
  /** Price per GPU-hour in the token's base units. */
  pricePerGpuHour: bigint
  /** True when the GPUs are simulated (configured for machines without GPUs). */
  simulated: boolean
}

export interface HostSummary {
  cpuModel: string | null
  cpuCores: number | null
  memoryMiB: number | null
  diskFreeMiB: number | null
  os: string | null
}

/** What a provider sells, gossiped on `/gpumesh/offers/1`, signed by its payment key. */
export interface Offer {
  type: 'offer'
  peerId: string
  binding: PeerBinding
  fleet: FleetMembership | null
  addresses: string[]
  gpus: OfferedGpus[]
  host: HostSummary
  /** ERC-20 token in which prices are given (zero address allowed off-chain). */
  token: Address
  chainId: bigint
  /**
   * How this provider settles: the escrow contract vouchers are signed for (on chain `chainId`), or
   * the zero address for off-chain settlement.
   */
  escrow: Address
  region: string | null
  minLeaseSec: number
  maxLeaseSec: number
  billingIntervalSec: number
  paymentGraceSec: number
  /** Increases with each publication; peers keep the highest per provider. */
  sequence: number
  issuedAt: number
  expiresAt: number
  /** Payment key's signature of `OfferCommitment` (see eip712.ts). */
  signature: PaymentSignature
}

export interface OrderRequirements {
  gpuCount: number
  /** Acceptable classes; empty means any. */
  classes: string[]
  minMemoryMiB: number
  /** e.g. "8.0"; null for no minimum. */
  minComputeCapability: string | null
  region: string | null
  /** Only providers of these fleet operators; empty means any. */
  operators: Address[]
  /**
   * Only providers settling through this escrow contract (the zero address: only off-chain
   * settlement); null means any.
   */
  escrow: Address | null
  /** Accept simulated GPUs (testing only). */
  allowSimulated: boolean
}

/** A renter's signed order: what it wants and the most it pays. */
export interface Order {
  type: 'order'
  orderId: Bytes32
  renter: Address
  /** The renter's libp2p peer id; only it may start the job. */
  renterPeerId: string
  requirements: OrderRequirements
  maxPricePerGpuHour: bigint
  durationSec: number
  token: Address
  chainId: bigint
  /** sha256 of the job bundle the renter will upload. */
  jobHash: Bytes32
  expiresAt: number
  signature: PaymentSignature
}

/** A matcher (or the renter itself) proposes a lease to a provider. */
export interface LeaseProposal {
  type: 'lease-proposal'
  order: Order
  /** Price per GPU-hour the matcher chose from the provider's offer. */
  pricePerGpuHour: bigint
  /** The offer sequence the match was made on. */
  offerSequence: number
  /** Class of GPU the matcher chose from the offer. */
  gpuClass: string
}

/** The provider's signed commitment to a lease. */
export interface LeaseTerms {
  leaseId: Bytes32
  orderId: Bytes32
  provider: Address
  providerPeerId: string
  renter: Address
  renterPeerId: string
  token: Address
  chainId: bigint
  /** The escrow contract vouchers for this lease are signed for; the zero address off-chain. */
  escrow: Address
  pricePerGpuHour: bigint
  /** UUIDs of the reserved GPUs. */
  gpus: string[]
  gpuClass: string
  durationSec: number
  billingIntervalSec: number
  paymentGraceSec: number
  /** The job must start before this time or the lease expires and its GPUs are freed. */
  startDeadline: number
  jobHash: Bytes32
  providerAddresses: string[]
  acceptedAt: number
}

export const LEASE_REJECT_CODES = [
  'MALFORMED',
  'BAD_SIGNATURE',
  'EXPIRED',
  'REPLAY',
  'RENTER_BLOCKED',
  'MATCHER_NOT_TRUSTED',
  'PRICE_TOO_LOW',
  'UNSUPPORTED_REQUIREMENTS',
  'NO_CAPACITY',
  'TOO_MANY_LEASES',
  'INSUFFICIENT_ESCROW',
  'RATE_LIMITED',
  'INTERNAL'
] as const
export type LeaseRejectCode = typeof LEASE_REJECT_CODES[number]

export type LeaseDecision =
  | { type: 'lease-decision', accepted: true, terms: LeaseTerms, signature: PaymentSignature }
  | { type: 'lease-decision', accepted: false, orderId: Bytes32 | null, code: LeaseRejectCode, message: string }

/** The renter proves it holds the lease's payment key and peer id. */
export interface JobAuth {
  leaseId: Bytes32
  peerId: string
  signature: PaymentSignature
}

export interface JobSpec {
  command: string
  args: string[]
  env: Record<string, string>
  /** Container image for the docker runner; null for the process runner. */
  image: string | null
  maxRunTimeSec: number
}

/**
 * Frames the renter sends on `/gpumesh/job/1.0.0`. A `job-submit` is followed by raw bundle chunks
 * (`job-chunk`) and a `job-bundle-end`. Other requests: attach (resume events from a sequence),
 * voucher, terminate, artifacts download.
 */
export interface JobSubmit {
  type: 'job-submit'
  auth: JobAuth
  spec: JobSpec
  bundleSize: number
}

export interface JobAttach {
  type: 'job-attach'
  auth: JobAuth
  /** Resume events after this sequence number (0: from the start). */
  fromSequence: number
}

export type JobEventKind = 'started' | 'log' | 'usage' | 'checkpoint' | 'exit' | 'terminated'

export interface JobEvent {
  type: 'job-event'
  leaseId: Bytes32
  sequence: number
  at: number
  kind: JobEventKind
  /** For `log`: which stream. */
  stream?: 'stdout' | 'stderr'
  /** For `log`: the line; for `checkpoint`, `terminated`: a human-readable note. */
  text?: string
  /** For `usage`: the signed report. */
  report?: SignedUsageReport
  /** For `exit`: the exit code (null when killed by a signal). */
  exitCode?: number | null
  /** For `exit`, `terminated`: the lease's final state. */
  state?: string
  /** For `terminated`: a reason code (UNPAID, RENTER_CANCEL, MAX_RUNTIME, ...). */
  reason?: string
}

/** One closed usage period, signed by the provider's payment key. */
export interface UsageReport {
  leaseId: Bytes32
  provider: Address
  renter: Address
  token: Address
  /** 0, 1, 2, ... ; periods tile the lease without overlap. */
  periodIndex: number
  /** Offsets on the provider's monotonic lease clock, milliseconds since the job started. */
  startOffsetMs: number
  endOffsetMs: number
  /** Leased GPUs × period length. */
  gpuMilliseconds: bigint
  /** floor(pricePerGpuHour × gpuMilliseconds / 3_600_000), in base units. */
  amount: bigint
  /** Sum of `amount` over periods 0..periodIndex. */
  cumulativeAmount: bigint
  /** Mean utilisation over the period, percent × 100 (integer), or null when unknown. */
  avgUtilizationBp: number | null
  peakMemoryMiB: number | null
  energyMilliJoules: bigint | null
  final: boolean
}

export interface SignedUsageReport {
  report: UsageReport
  signature: PaymentSignature
}

/** The renter pays: `Voucher(bytes32 leaseId,address provider,address renter,address token,uint256 cumulativeAmount,uint64 sequence)`. */
export interface Voucher {
  type: 'voucher'
  leaseId: Bytes32
  provider: Address
  renter: Address
  token: Address
  cumulativeAmount: bigint
  sequence: bigint
  chainId: bigint
  verifyingContract: Address
  signature: PaymentSignature
}

/** Either side ends the lease early. Signed by the sender's payment key. */
export interface Terminate {
  type: 'terminate'
  leaseId: Bytes32
  reason: string
  at: number
  signature: PaymentSignature
}

/**
 * Reason codes of a refused job request (`job-reply` with `ok: false`). Voucher refusals carry the
 * provider's voucher check code instead (WRONG_SIGNER, SEQUENCE_NOT_HIGHER, AMOUNT_ABOVE_REPORTED, ...).
 */
export const JOB_REPLY_CODES = [
  'MALFORMED',
  'NO_SUCH_LEASE',
  'BAD_AUTH',
  'NOT_RENTER',
  'RUNNER_DISABLED',
  'WRONG_STATE',
  'TOO_LARGE',
  'HASH_MISMATCH',
  'BAD_BUNDLE',
  'BAD_SPEC',
  'SPAWN_FAILED',
  /** The docker runner: the job's image is not present, not allowed, or could not be pulled; nothing billed. */
  'IMAGE_UNAVAILABLE',
  'NOT_FINISHED',
  'EXPIRED_ARTIFACTS',
  'TIMEOUT',
  'SHUTTING_DOWN',
  'INTERNAL'
] as const
export type JobReplyCode = typeof JOB_REPLY_CODES[number]

/**
 * The provider's answer on `/gpumesh/job/1.0.0`: to a `job-submit` (after the bundle), a `job-attach`,
 * a `terminate`, a `voucher` (`subject` says which), or a keep-alive while nothing else is sent.
 * `code` is null when `ok`; otherwise a {@link JobReplyCode} or, for a voucher, the refusal code.
 */
export interface JobReply {
  type: 'job-reply'
  subject: 'submit' | 'attach' | 'terminate' | 'voucher' | 'keepalive'
  ok: boolean
  code: string | null
  message: string | null
}

/** The renter asks for the job's artifacts (its output and checkpoint directories, as tar.gz). */
export interface ArtifactsRequest {
  type: 'artifacts-request'
  auth: JobAuth
}

/**
 * Answers an `artifacts-request`: when `ok`, `size` bytes of tar.gz follow in raw frames and their
 * sha256 is `sha256`; then the provider closes the stream.
 */
export type ArtifactsHeader =
  | { type: 'artifacts-header', ok: true, size: number, sha256: Bytes32 }
  | { type: 'artifacts-header', ok: false, code: JobReplyCode, message: string }

/** One reason offers failed an order, with how many offers failed on it first. */
export interface NoMatchReason {
  /** A matcher's check, e.g. `PRICE`, `TOO_FEW_GPUS`, `CLASS` (upper-case, matcher-defined). */
  code: string
  count: number
}

/** A provider the matcher proposed to that did not lease: why (a lease reject code, `TIMEOUT`, ...). */
export interface DeclinedProposal {
  providerPeerId: string
  code: string
}

/** Why an order got no lease, in numbers and in one sentence a renter can act on. */
export interface NoMatchExplanation {
  /** Offers in the matcher's book. */
  offersConsidered: number
  /** Offers that fit the order (their providers all declined when this is not 0). */
  fitting: number
  /** Offers per first failing check, most frequent first. */
  reasons: NoMatchReason[]
  /** When nothing fits: the lowest price per GPU-hour that fails on price alone. */
  cheapestPricePerGpuHour: bigint | null
  /** Providers proposed to, in order, that did not lease. */
  declined: DeclinedProposal[]
  /** e.g. "5 offers: 3 too few GPUs, 2 above your price; the cheapest fitting would need 2.10/GPU-hour". */
  message: string
}

/**
 * A matcher's answer to an order on `/gpumesh/order/1.0.0`: the provider's signed lease terms (the
 * renter verifies them itself) and where to reach the provider, or why there is none. Requests the
 * matcher cannot take (bad bytes, bad signature, expired) are answered with a net error envelope
 * carrying a reason code instead.
 */
export type OrderResult =
  | {
    type: 'order-result'
    status: 'leased'
    orderId: Bytes32
    /** The provider's accepted decision, verbatim: terms signed by the offer's bound payment key. */
    lease: { terms: LeaseTerms, signature: PaymentSignature }
    providerPeerId: string
    /** The addresses of the provider's offer, to dial for the job. */
    providerAddresses: string[]
  }
  | {
    type: 'order-result'
    status: 'no-match'
    orderId: Bytes32
    explanation: NoMatchExplanation
  }

/** Filters of a book query; null means any. Every filter must hold for one GPU kind of an offer. */
export interface BookFilters {
  gpuClass: string | null
  /** Least number of free GPUs of the kind. */
  minGpus: number | null
  minMemoryMiB: number | null
  maxPricePerGpuHour: bigint | null
  region: string | null
  /** Fleet operator address. */
  operator: Address | null
  includeSimulated: boolean
}

/** Asks a matcher for a page of its book on `/gpumesh/book/1.0.0`. */
export interface BookQuery {
  type: 'book-query'
  filters: BookFilters
  offset: number
  /** At most `LIMITS.bookPage`. */
  limit: number
  /**
   * Ask for the matcher's observations of each listed provider (`records` in the page). Absent or
   * false: the page carries none, as before this field existed.
   */
  includeRecords?: boolean
}

/**
 * What a matcher has observed of one provider since it started: how long the provider's offer was
 * live in its book and how many times that offer expired without being renewed (the provider went
 * away while offering; a lease running there would have been interrupted). The matcher's word, not
 * signed by anyone.
 */
export interface ProviderObservation {
  peerId: string
  /** Seconds the provider's offer was in the book, over every stay. */
  observedSec: number
  /** Times the provider's offer expired in the book without a newer one. */
  interruptions: number
}

/**
 * A page of a matcher's book, cheapest first (by each offer's cheapest GPU kind that passes the
 * filters). Offers are the providers' signed offers, verbatim: a reader can verify each one.
 */
export interface BookPage {
  type: 'book-page'
  offers: Offer[]
  /** Offset of the next page, or null when this was the last. */
  nextOffset: number | null
  /** Offers in the whole book (unfiltered). */
  bookSize: number
  /**
   * Only when the query set `includeRecords`: the matcher's observations of the providers of this
   * page's offers (at most one per offer; a provider it has no observation of is left out).
   */
  records?: ProviderObservation[]
}

/** An offer without its signature: what its `OfferCommitment` commits to. */
export type OfferBody = Omit<Offer, 'signature'>

/** Every top-level wire message, told apart by `type`. */
export type Message =
  | Offer
  | Order
  | LeaseProposal
  | LeaseDecision
  | JobSubmit
  | JobAttach
  | JobEvent
  | Voucher
  | Terminate
  | OrderResult
  | BookQuery
  | BookPage
  | JobReply
  | ArtifactsRequest
  | ArtifactsHeader

export type MessageOfType<T extends Message['type']> = Extract<Message, { type: T }>
