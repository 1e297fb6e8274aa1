import type { Address, FleetMembership, Offer, OfferedGpus, Order, OrderRequirements } from '@gpumesh/protocol'

// The pure core trusts what it is given (signatures are checked before an offer reaches the book), so
// these build protocol-typed offers and orders with placeholder peer ids, keys and signatures.

export const TOKEN = '0x00000000000000000000000000000000000000aa'
export const NOW = 1_000_000

const NO_SIGNATURE = { publicKey: `0x02${'00'.repeat(32)}`, signature: `0x${'00'.repeat(65)}` } as const
const PAYMENT: Address = '0x00000000000000000000000000000000000000ff'

export function gpu (overrides: Partial<OfferedGpus> = {}): OfferedGpus {
  return {
    class: 'H100',
    vendor: 'nvidia',
    memoryMiB: 81920,
    computeCapability: '9.0',
    countFree: 8,
    countTotal: 8,
    pricePerGpuHour: 2_000_000n,
    simulated: false,
    ...overrides
  }
}

/** A fleet membership naming `operator` (any case), with a placeholder proof. */
export function fleetOf (operator: string, peerId = 'peer'): FleetMembership {
  return { operator: operator as Address, member: PAYMENT, peerId, expiresAt: NOW + 86_400_000, proof: NO_SIGNATURE }
}

export type OfferOverrides = Partial<Omit<Offer, 'token' | 'fleet'>> & { token?: string, fleet?: { operator: string } | null }

export function offer (peerId: string, overrides: OfferOverrides = {}): Offer {
  const { token, fleet, ...rest } = overrides
  return {
    type: 'offer',
    peerId,
    binding: { peerId, payment: PAYMENT, proof: NO_SIGNATURE },
    fleet: fleet == null ? null : fleetOf(fleet.operator, peerId),
    addresses: [],
    gpus: [gpu()],
    host: { cpuModel: null, cpuCores: null, memoryMiB: null, diskFreeMiB: null, os: null },
    token: (token ?? TOKEN) as Address,
    chainId: 1n,
    escrow: '0x0000000000000000000000000000000000000000',
    region: 'eu',
    minLeaseSec: 60,
    maxLeaseSec: 86_400,
    billingIntervalSec: 300,
    paymentGraceSec: 60,
    sequence: 1,
    issuedAt: 0,
    expiresAt: NOW + 60_000,
    signature: NO_SIGNATURE,
    ...rest
  }
}

export type RequirementOverrides = Partial<Omit<OrderRequirements, 'operators'>> & { operators?: readonly string[] }
export type OrderOverrides = Partial<Omit<Order, 'token' | 'requirements'>> & { token?: string }

export function order (requirements: RequirementOverrides = {}, overrides: OrderOverrides = {}): Order {
  const { operators, ...req } = requirements
  const { token, ...rest } = overrides
  return {
    type: 'order',
    orderId: `0x${'00'.repeat(32)}`,
    renter: PAYMENT,
    renterPeerId: 'renter',
    requirements: {
      gpuCount: 1,
      classes: [],
      minMemoryMiB: 0,
      minComputeCapability: null,
      region: null,
      operators: (operators ?? []) as Address[],
      escrow: null,
      allowSimulated: false,
      ...req
    },
    maxPricePerGpuHour: 10_000_000n,
    durationSec: 3600,
    token: (token ?? TOKEN) as Address,
    chainId: 1n,
    jobHash: `0x${'00'.repeat(32)}`,
    expiresAt: NOW + 60_000,
    signature: NO_SIGNATURE,
    ...rest
  }
}
