import { ZERO_ADDRESS } from '@gpumesh/protocol'
import type { Address, LeaseProposal, LeaseRejectCode, Order } from '@gpumesh/protocol'
import type { InventoryGpu } from './inventory.js'
import { settlementEscrow, type ProviderConfig } from './config.js'

/**
 * The pure checks of a lease proposal, one function per reason code, in the order the handler runs
 * them. Each returns null when the proposal passes, else the rejection.
 */
export interface Rejection {
  code: LeaseRejectCode
  message: string
}

const reject = (code: LeaseRejectCode, message: string): Rejection => ({ code, message })

/** A proposal must be consistent in itself: the matcher may not charge more than the renter allows. */
export function checkConsistent (proposal: LeaseProposal): Rejection | null {
  if (proposal.pricePerGpuHour > proposal.order.maxPricePerGpuHour) {
    return reject('MALFORMED', `proposed price ${proposal.pricePerGpuHour} exceeds the order's maximum ${proposal.order.maxPricePerGpuHour}`)
  }
  return null
}

export function checkExpiry (order: Order, now: number): Rejection | null {
  return order.expiresAt <= now ? reject('EXPIRED', `the order expired at ${order.expiresAt} (now ${now})`) : null
}

const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

export function checkRenter (order: Order, config: ProviderConfig): Rejection | null {
  const { allowRenters, denyRenters } = config.leases
  if (denyRenters.some((a) => sameAddress(a, order.renter))) return reject('RENTER_BLOCKED', `renter ${order.renter} is on leases.denyRenters`)
  if (allowRenters.length > 0 && !allowRenters.some((a) => sameAddress(a, order.renter))) {
    return reject('RENTER_BLOCKED', `renter ${order.renter} is not on leases.allowRenters`)
  }
  return null
}

/** A renter proposing its own order is always heard; a matcher only when trusted (or no list is set). */
export function checkMatcher (proposerPeerId: string, order: Order, config: ProviderConfig): Rejection | null {
  const trusted = config.leases.trustedMatchers
  if (trusted.length === 0 || proposerPeerId === order.renterPeerId || trusted.includes(proposerPeerId)) return null
  return reject('MATCHER_NOT_TRUSTED', `matcher ${proposerPeerId} is not on leases.trustedMatchers`)
}

/** `floor` is the ask price of the class now; null when the class is not for sale (checked later). */
export function checkPrice (proposal: LeaseProposal, floor: bigint | null): Rejection | null {
  if (floor != null && proposal.pricePerGpuHour < floor) {
    return reject('PRICE_TOO_LOW', `proposed ${proposal.pricePerGpuHour} per GPU-hour for ${proposal.gpuClass}, the floor is ${floor}`)
  }
  return null
}

/** "8.0" ≥ "7.5": compares major then minor. */
export function computeCapabilityAtLeast (have: string, want: string): boolean {
  const [hMajor = 0, hMinor = 0] = have.split('.').map(Number)
  const [wMajor = 0, wMinor = 0] = want.split('.').map(Number)
  return hMajor > wMajor || (hMajor === wMajor && hMinor >= wMinor)
}

/**
 * The GPUs that could ever serve the proposal: healthy and not busy, of the proposed class, real unless
 * the order accepts simulated ones, and meeting memory and compute capability. Free or held.
 */
export function fittingGpus (proposal: LeaseProposal, gpus: readonly InventoryGpu[]): InventoryGpu[] {
  const r = proposal.order.requirements
  return gpus.filter((g) =>
    g.class === proposal.gpuClass && g.healthy && !g.busy && g.state !== 'gone' &&
    (r.allowSimulated || !g.simulated) &&
    (g.memoryMiB ?? 0) >= r.minMemoryMiB &&
    (r.minComputeCapability == null || (g.computeCapability != null && computeCapabilityAtLeast(g.computeCapability, r.minComputeCapability))))
}

/** Terms this provider never agrees to, and requirements its GPUs can never meet. */
export function checkRequirements (proposal: LeaseProposal, config: ProviderConfig, gpus: readonly InventoryGpu[], priced: boolean, operator: Address | null = null): Rejection | null {
  const { order } = proposal
  const r = order.requirements
  const no = (message: string): Rejection => reject('UNSUPPORTED_REQUIREMENTS', message)
  if (!sameAddress(order.token, config.pricing.token)) return no(`token ${order.token} is not this provider's ${config.pricing.token}`)
  if (order.chainId !== BigInt(config.pricing.chainId)) return no(`chain ${order.chainId} is not this provider's ${config.pricing.chainId}`)
  const escrow = settlementEscrow(config)
  if (r.escrow != null && !sameAddress(r.escrow, escrow)) {
    return no(`this provider settles ${escrow === ZERO_ADDRESS ? 'off-chain' : `through escrow ${escrow}`}, not ${r.escrow === ZERO_ADDRESS ? 'off-chain' : `through escrow ${r.escrow}`}`)
  }
  if (order.durationSec < config.leases.minDurationSec || order.durationSec > config.leases.maxDurationSec) {
    return no(`duration ${order.durationSec} s is outside ${config.leases.minDurationSec}..${config.leases.maxDurationSec} s`)
  }
  if (r.classes.length > 0 && !r.classes.includes(proposal.gpuClass)) return no(`class ${proposal.gpuClass} is not one the order accepts`)
  if (!gpus.some((g) => g.class === proposal.gpuClass)) return no(`this provider has no ${proposal.gpuClass} GPUs`)
  if (!priced) return no(`class ${proposal.gpuClass} is not for sale here`)
  if (r.region != null && r.region !== config.offers.region) return no(`region ${r.region} is not this provider's (${config.offers.region ?? 'none'})`)
  if (r.operators.length > 0) {
    if (operator == null) return no('this provider belongs to no fleet operator')
    if (!r.operators.some((o) => sameAddress(o, operator))) return no(`this provider's fleet operator ${operator} is not one the order accepts`)
  }
  const fitting = fittingGpus(proposal, gpus)
  if (fitting.length < r.gpuCount) {
    return no(`${r.gpuCount} ${proposal.gpuClass} GPU(s) meeting the requirements wanted, this provider has ${fitting.length}` +
      (!r.allowSimulated && gpus.some((g) => g.simulated) ? ' (its GPUs are simulated and the order does not allow that)' : ''))
  }
  return null
}
