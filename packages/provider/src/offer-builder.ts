import { LIMITS } from '@gpumesh/protocol'
import type { Address, FleetMembership, HostSummary, OfferBody, OfferedGpus, PeerBinding } from '@gpumesh/protocol'
import { askPrice, type PricingPolicy, type Utilisation } from './pricing.js'
import type { InventoryGpu } from './inventory.js'
import type { HostInfo } from './probe/index.js'
import { settlementEscrow, type ProviderConfig } from './config.js'

/** Everything an offer is made of; `buildOffer` is pure over it. */
export interface OfferInput {
  config: ProviderConfig
  gpus: readonly InventoryGpu[]
  host: HostInfo | null
  peerId: string
  binding: PeerBinding
  addresses: readonly string[]
  /** The node's fleet membership, carried while it outlives the offer. */
  fleet?: FleetMembership | null
  sequence: number
  now: number
  /**
   * What keeps the job runner from running jobs here (the docker engine unreachable, no NVIDIA runtime,
   * no /dev/kfd): `engine` keeps everything out of the offer, a vendor's problem that vendor's GPUs.
   */
  runnerProblems?: RunnerProblems | null
}

/** Problems the runner's checks found, as sentences for the operator. */
export interface RunnerProblems {
  engine: string | null
  vendors: Partial<Record<'nvidia' | 'amd' | 'simulated', string>>
}

export type OfferBuild =
  | { offer: OfferBody, notes: string[] }
  | { offer: null, reason: string, notes: string[] }

/** The pricing policy of a configuration. */
export function pricingPolicy (config: ProviderConfig): PricingPolicy {
  return {
    perGpuHour: config.pricing.perGpuHour,
    defaultPerGpuHour: config.pricing.defaultPerGpuHour,
    spotDiscountPercent: config.pricing.spotDiscountPercent,
    surge: config.pricing.surge
  }
}

/** GPUs leased out of GPUs that can be sold at all (healthy and not busy), for the surge. */
export function utilisation (gpus: readonly InventoryGpu[]): Utilisation {
  const sellableAtAll = gpus.filter((g) => g.healthy && !g.busy && g.state !== 'gone')
  return {
    leased: sellableAtAll.filter((g) => g.state === 'reserved' || g.state === 'leased').length,
    total: sellableAtAll.length
  }
}

/** GPUs of one class on this host are interchangeable; simulated ones are never mixed with real ones. */
function groupKey (gpu: InventoryGpu): string {
  return `${gpu.class}\u0000${gpu.simulated ? 'sim' : 'real'}`
}

/**
 * The unsigned offer for the inventory as it is now, or null and the reason when there is nothing to
 * sell. Classes without a price, GPUs of unknown vendor or memory are left out and said why in `notes`.
 */
export function buildOffer (input: OfferInput): OfferBuild {
  const { config, gpus, now } = input
  const notes: string[] = []
  if (gpus.length === 0) {
    return { offer: null, reason: 'no GPUs found on this machine (set probe.simulate in config.yaml to try gpumesh without GPUs)', notes }
  }
  if (input.runnerProblems?.engine != null) {
    return { offer: null, reason: `the job runner cannot run jobs: ${input.runnerProblems.engine}`, notes }
  }
  const healthy = gpus.filter((g) => g.healthy && !g.busy && g.state !== 'gone')
  if (healthy.length === 0) {
    const why = gpus.map((g) => `${g.uuid}: ${g.problems.join('; ') || g.state}`).join(', ')
    return { offer: null, reason: `no healthy GPU to sell (${why})`, notes }
  }
  const policy = pricingPolicy(config)
  const use = utilisation(gpus)
  const groups = new Map<string, InventoryGpu[]>()
  for (const gpu of healthy) {
    const list = groups.get(groupKey(gpu)) ?? []
    list.push(gpu)
    groups.set(groupKey(gpu), list)
  }
  const offered: OfferedGpus[] = []
  for (const list of groups.values()) {
    const first = list[0] as InventoryGpu
    const price = askPrice(first.class, policy, use)
    if (price == null || price <= 0n) {
      notes.push(`${list.length} ${first.class} GPU(s) not offered: no price for class ${first.class} (set pricing.perGpuHour.${first.class} or pricing.defaultPerGpuHour)`)
      continue
    }
    const runnerProblem = input.runnerProblems?.vendors[first.simulated ? 'simulated' : first.vendor as 'nvidia' | 'amd']
    if (runnerProblem !== undefined) {
      notes.push(`${list.length} ${first.class} GPU(s) not offered: ${runnerProblem}`)
      continue
    }
    if (first.vendor === 'unknown') {
      notes.push(`${list.length} ${first.class} GPU(s) not offered: vendor unknown`)
      continue
    }
    const memories = list.map((g) => g.memoryMiB).filter((m): m is number => m != null && m > 0)
    if (memories.length !== list.length) {
      notes.push(`${list.length} ${first.class} GPU(s) not offered: memory size unknown`)
      continue
    }
    const capabilities = list.map((g) => g.computeCapability)
    offered.push({
      class: first.class,
      vendor: first.vendor,
      memoryMiB: Math.min(...memories),
      computeCapability: capabilities.every((c) => c != null && c === capabilities[0]) ? (capabilities[0] ?? null) : null,
      countFree: list.filter((g) => g.state === 'free').length,
      countTotal: list.length,
      pricePerGpuHour: price,
      simulated: first.simulated
    })
  }
  if (offered.length === 0) {
    return { offer: null, reason: `nothing to sell: ${notes.join('; ')}`, notes }
  }
  offered.sort((a, b) => a.class.localeCompare(b.class) || Number(a.simulated) - Number(b.simulated))
  const ttlMs = config.offers.ttlSec * 1000
  // A membership that would expire while the offer is out is left off: receivers would refuse the offer.
  let fleet: FleetMembership | null = null
  if (input.fleet != null) {
    if (input.fleet.expiresAt > now + ttlMs) fleet = input.fleet
    else notes.push(`fleet membership of operator ${input.fleet.operator} expires at ${new Date(input.fleet.expiresAt).toISOString()}: left out of the offer (ask the operator to renew it)`)
  }
  return {
    offer: {
      type: 'offer',
      peerId: input.peerId,
      binding: input.binding,
      fleet,
      addresses: input.addresses.slice(0, LIMITS.addresses),
      gpus: offered.slice(0, LIMITS.offeredGpuKinds),
      host: hostSummary(input.host),
      token: config.pricing.token as Address,
      chainId: BigInt(config.pricing.chainId),
      escrow: settlementEscrow(config),
      region: config.offers.region,
      minLeaseSec: config.leases.minDurationSec,
      maxLeaseSec: config.leases.maxDurationSec,
      billingIntervalSec: config.billing.intervalSec,
      paymentGraceSec: config.billing.paymentGraceSec,
      sequence: input.sequence,
      issuedAt: now,
      expiresAt: now + ttlMs
    },
    notes
  }
}

function clip (text: string | null, max: number): string | null {
  if (text == null || text === '') return null
  return text.length > max ? text.slice(0, max) : text
}

export function hostSummary (host: HostInfo | null): HostSummary {
  if (host == null) return { cpuModel: null, cpuCores: null, memoryMiB: null, diskFreeMiB: null, os: null }
  const os = [host.os.distro ?? host.os.platform, host.os.release].filter((p) => p != null && p !== '').join(' ')
  const nonNegative = (n: number | null): number | null => (n == null || !Number.isFinite(n) || n < 0 ? null : Math.floor(n))
  const cores = host.cpu.cores
  return {
    cpuModel: clip(host.cpu.model, LIMITS.string),
    cpuCores: cores != null && Number.isSafeInteger(cores) && cores > 0 ? cores : null,
    memoryMiB: nonNegative(host.memoryTotalMiB),
    diskFreeMiB: nonNegative(host.diskFreeMiB),
    os: clip(os, LIMITS.string)
  }
}
