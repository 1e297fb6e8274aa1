import { cumulativeAmount, formatAmount } from '@gpumesh/protocol'
import type { Address } from '@gpumesh/protocol'

/**
 * The provider's exposure rule on chain: before a lease is accepted, and after each usage period,
 * the renter's available escrow (its balance less any announced withdrawal) must cover everything
 * this provider metered for it and has not yet redeemed, plus the next billing interval of each of its
 * running leases (and of the lease being accepted). If it does not, the proposal is refused
 * (`INSUFFICIENT_ESCROW`) or the job is stopped as for `UNPAID`. So what the provider can lose is at
 * most one interval plus the payment grace, as off-chain.
 */

/** What the guard reads from the chain (an `EscrowClient` is one). */
export interface EscrowAccountReader {
  account: (renter: Address, token: Address) => Promise<{ available: bigint }>
}

/** What the guard reads from the ledger about one renter's leases with this provider. */
export interface RenterCommitments {
  /** Metered (reported) and not yet redeemed on chain, over every lease of the renter in this token. */
  unredeemed: bigint
  /** The next billing interval of each of the renter's running leases, summed. */
  nextIntervals: bigint
}

export interface EscrowGuardComponents {
  reader: EscrowAccountReader
  commitments: (renter: Address, token: Address) => RenterCommitments
}

export interface EscrowGuardOptions {
  /** For messages. */
  tokenDecimals: number
}

export interface EscrowVerdict {
  covered: boolean
  available: bigint
  required: bigint
  /** A sentence for the renter (in the rejection or the lease's end reason). */
  message: string
}

/** The price of one billing interval of a lease, by the one billing rule. */
export function intervalCost (pricePerGpuHour: bigint, gpuCount: number, intervalSec: number): bigint {
  return cumulativeAmount(pricePerGpuHour, BigInt(intervalSec) * 1000n * BigInt(gpuCount))
}

export class EscrowGuard {
  readonly #c: EscrowGuardComponents
  readonly #o: EscrowGuardOptions

  constructor (components: EscrowGuardComponents, options: EscrowGuardOptions) {
    this.#c = components
    this.#o = options
  }

  /** Whether the renter's escrow covers what it owes this provider plus the next intervals and `extra`. */
  async check (renter: Address, token: Address, extra: bigint, options: { signal?: AbortSignal } = {}): Promise<EscrowVerdict> {
    options.signal?.throwIfAborted()
    const { available } = await this.#c.reader.account(renter, token)
    const exposure = this.#c.commitments(renter, token)
    const required = exposure.unredeemed + exposure.nextIntervals + extra
    const covered = available >= required
    const amount = (v: bigint): string => formatAmount(v, this.#o.tokenDecimals)
    const message = covered
      ? `escrow ${amount(available)} covers ${amount(required)}`
      : `the renter's escrow holds ${amount(available)} available, but ${amount(exposure.unredeemed)} is unredeemed and the next ` +
        `billing interval needs ${amount(exposure.nextIntervals + extra)}: deposit at least ${amount(required - available)} more ` +
        '(gpumesh escrow deposit)'
    return { covered, available, required, message }
  }
}
