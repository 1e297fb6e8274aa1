import type { MatcherOffer, MatcherOfferedGpus, MatcherOrder, MatcherOrderRequirements } from '@gpumesh/matcher'

export const TOKEN = '0x00000000000000000000000000000000000000aa'
export const NOW = 1_000_000

export function gpu (overrides: Partial<MatcherOfferedGpus> = {}): MatcherOfferedGpus {
  return {
    class: 'H100',
    memoryMiB: 81920,
    computeCapability: '9.0',
    countFree: 8,
    pricePerGpuHour: 2_000_000n,
    simulated: false,
    ...overrides
  }
}

export function offer (peerId: string, overrides: Partial<MatcherOffer> = {}): MatcherOffer {
  return {
    peerId,
    fleet: null,
    gpus: [gpu()],
    token: TOKEN,
    chainId: 1n,
    region: 'eu',
    minLeaseSec: 60,
    maxLeaseSec: 86_400,
    sequence: 1,
    expiresAt: NOW + 60_000,
    ...overrides
  }
}

export function order (requirements: Partial<MatcherOrderRequirements> = {}, overrides: Partial<MatcherOrder> = {}): MatcherOrder {
  return {
    requirements: {
      gpuCount: 1,
      classes: [],
      minMemoryMiB: 0,
      minComputeCapability: null,
      region: null,
      operators: [],
      allowSimulated: false,
      ...requirements
    },
    maxPricePerGpuHour: 10_000_000n,
    durationSec: 3600,
    token: TOKEN,
    chainId: 1n,
    ...overrides
  }
}
