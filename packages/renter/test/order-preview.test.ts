import { describe, expect, it } from 'vitest'
import { parseJobFile, previewOrder } from '@gpumesh/renter'
import type { Address, Offer, OfferedGpus } from '@gpumesh/protocol'
import { offerBody } from './helpers.js'

// The dry run's money: the most at the first candidate's price and at the cap, both capped by the budget.
// (Which offers fit is held to the matcher's own scan in test/order-preview.property.test.ts.)

const TOKEN = '0x00000000000000000000000000000000000000aa'
const NO_SIGNATURE = { publicKey: `0x02${'00'.repeat(32)}`, signature: `0x${'00'.repeat(65)}` } as const

// The preview trusts offers already verified, so these carry placeholder keys and signatures.
const gpu = (o: Partial<OfferedGpus> = {}): OfferedGpus =>
  ({ class: 'H100', vendor: 'nvidia', memoryMiB: 81_920, computeCapability: '9.0', countFree: 8, countTotal: 8, pricePerGpuHour: 2_000_000n, simulated: false, ...o })
const offer = (peerId: string, o: Partial<Offer>): Offer => ({
  ...offerBody(peerId, {
    binding: { peerId, payment: TOKEN as Address, proof: NO_SIGNATURE },
    gpus: [gpu()],
    token: TOKEN as Address,
    chainId: 1n,
    issuedAt: 0,
    expiresAt: 2_000_000
  }),
  signature: NO_SIGNATURE,
  ...o
})
const job = (extra = ''): ReturnType<typeof parseJobFile> => parseJobFile([
  'gpus: { count: 2, classes: [H100] }',
  'maxPricePerGpuHour: "3.00"',
  `token: { address: "${TOKEN}", decimals: 6, chainId: 1 }`,
  'durationSec: 3600',
  'command: train',
  extra,
  ''
].join('\n'))

describe('previewOrder', () => {
  const offers: Offer[] = [
    offer('peer-b', { gpus: [gpu({ pricePerGpuHour: 2_000_000n })] }),
    offer('peer-a', { gpus: [gpu({ pricePerGpuHour: 1_250_000n }), gpu({ class: 'L4', pricePerGpuHour: 1n })] }),
    offer('peer-c', { gpus: [gpu({ pricePerGpuHour: 1_000_000n, countFree: 1 })] })
  ]

  it('lists fitting providers cheapest first and what the lease costs at most', () => {
    const p = previewOrder(job(), offers, 1_000_000, 10n ** 12n)
    expect(p.candidates.map((c) => [c.peerId, c.pricePerGpuHour])).toEqual([['peer-a', 1_250_000n], ['peer-b', 2_000_000n]])
    expect(p.mismatches).toEqual({ TOO_FEW_GPUS: 1 })
    expect(p.gpuMilliseconds).toBe(7_200_000n) // 2 GPUs × 1 h
    expect(p.mostAtMatch).toBe(2_500_000n)
    expect(p.mostAtCap).toBe(6_000_000n)
  })

  it('caps both figures by the budget', () => {
    const p = previewOrder(job('budget: "2.00"'), offers, 1_000_000, 2_000_000n)
    expect(p.mostAtMatch).toBe(2_000_000n)
    expect(p.mostAtCap).toBe(2_000_000n)
    expect(previewOrder(job(), [], 1_000_000, 1n).mostAtMatch).toBeNull()
  })
})
