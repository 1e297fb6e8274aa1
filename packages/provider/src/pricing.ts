/**
 * Pricing is pure arithmetic on bigint base units: no clock, no I/O. The offer advertises
 * `askPrice(...)`, and the same function gives the floor a proposal must meet, so what a renter sees
 * in the book is what it is charged. The surge reacts to utilisation in the next offer.
 */

export interface PricingPolicy {
  /** Price per GPU-hour by model class, in base units. */
  readonly perGpuHour: Readonly<Record<string, bigint>>
  /** Price for classes not listed; null: such GPUs are not offered. */
  readonly defaultPerGpuHour: bigint | null
  readonly spotDiscountPercent: number
  readonly surge: {
    readonly enabled: boolean
    readonly thresholdPercent: number
    readonly maxPercent: number
  }
}

/** How busy the host is: GPUs leased (accepted or running) out of GPUs sellable at all. */
export interface Utilisation {
  leased: number
  total: number
}

/** The list price of a class before discount and surge, or null when the class is not for sale. */
export function listPrice (gpuClass: string, policy: PricingPolicy): bigint | null {
  return policy.perGpuHour[gpuClass] ?? policy.defaultPerGpuHour
}

/**
 * Surcharge in basis points: 0 up to the threshold share of leased GPUs, rising linearly to
 * `maxPercent` when every GPU is leased.
 */
export function surgeBasisPoints (policy: PricingPolicy, utilisation: Utilisation): bigint {
  if (!policy.surge.enabled || utilisation.total <= 0) return 0n
  const leasedBp = BigInt(Math.min(utilisation.leased, utilisation.total)) * 10_000n / BigInt(utilisation.total)
  const thresholdBp = BigInt(policy.surge.thresholdPercent) * 100n
  if (leasedBp <= thresholdBp) return 0n
  const span = 10_000n - thresholdBp
  const maxBp = BigInt(policy.surge.maxPercent) * 100n
  return span === 0n ? maxBp : maxBp * (leasedBp - thresholdBp) / span
}

/**
 * The price per GPU-hour this provider asks now for a class, in base units, rounded down:
 * list × (1 − discount) × (1 + surge). It is both the offer's price and the floor a proposal must
 * meet. Null when the class is not for sale.
 */
export function askPrice (gpuClass: string, policy: PricingPolicy, utilisation: Utilisation): bigint | null {
  const list = listPrice(gpuClass, policy)
  if (list == null) return null
  const discounted = list * BigInt(100 - policy.spotDiscountPercent) / 100n
  return discounted * (10_000n + surgeBasisPoints(policy, utilisation)) / 10_000n
}

/** The billing rule lives in the protocol, because provider and renter must compute it alike. */
export { cumulativeAmount } from '@gpumesh/protocol'
