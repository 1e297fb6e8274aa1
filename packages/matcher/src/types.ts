/**
 * The parts of the wire messages the matching core reads.
 *
 * `@gpumesh/protocol` does not export its message types yet, and a package may not reach into another
 * package's sources, so these mirror `Offer`, `OfferedGpus`, `Order` and `OrderRequirements` of
 * packages/protocol/src/messages.ts structurally: every protocol `Offer` is assignable to `MatcherOffer`
 * and every protocol `Order` to `MatcherOrder`. The book and the matcher are generic over the offer
 * type, so a caller that inserts protocol offers gets protocol offers back.
 *
 * Once the protocol package exports its types, these can become aliases of them (or be checked against
 * them with a type-level assertion) without changing any caller.
 */

/** One kind of GPU an offer sells (mirrors protocol `OfferedGpus`). */
export interface MatcherOfferedGpus {
  /** Model class, e.g. `H100-SXM-80GB`. */
  readonly class: string
  readonly memoryMiB: number
  /** e.g. "9.0"; null when the vendor has no such notion. */
  readonly computeCapability: string | null
  /** GPUs of this class free for a new lease right now. */
  readonly countFree: number
  /** Price per GPU-hour in the token's base units. */
  readonly pricePerGpuHour: bigint
  readonly simulated: boolean
}

/** The fleet membership fields the matcher reads (mirrors protocol `FleetMembership`). */
export interface MatcherFleet {
  /** The operator's payment address, compared case-insensitively. */
  readonly operator: string
}

/** A validated offer (mirrors protocol `Offer`). */
export interface MatcherOffer {
  readonly peerId: string
  readonly fleet: MatcherFleet | null
  readonly gpus: readonly MatcherOfferedGpus[]
  /** ERC-20 address, compared case-insensitively. */
  readonly token: string
  readonly chainId: bigint
  readonly region: string | null
  readonly minLeaseSec: number
  readonly maxLeaseSec: number
  /** Increases with each publication; the book keeps the highest per provider. */
  readonly sequence: number
  /** Unix milliseconds; the offer is dead once `expiresAt <= now`. */
  readonly expiresAt: number
}

/** What an order asks for (mirrors protocol `OrderRequirements`). */
export interface MatcherOrderRequirements {
  readonly gpuCount: number
  /** Acceptable classes; empty means any. */
  readonly classes: readonly string[]
  readonly minMemoryMiB: number
  /** e.g. "8.0"; null for no minimum. */
  readonly minComputeCapability: string | null
  /** Exact region name, or null for any. */
  readonly region: string | null
  /** Fleet operator addresses (case-insensitive); empty means any. */
  readonly operators: readonly string[]
  readonly allowSimulated: boolean
}

/** A validated order (mirrors protocol `Order`). */
export interface MatcherOrder {
  readonly requirements: MatcherOrderRequirements
  /** Base units per GPU-hour. */
  readonly maxPricePerGpuHour: bigint
  readonly durationSec: number
  readonly token: string
  readonly chainId: bigint
}
