import { describe, expect, it } from 'vitest'
import { encodeOffer, marketDomain, signFleetMembership, signOffer, signPeerBinding, type Address, type FleetMembership, type PeerBinding } from '@gpumesh/protocol'
import { Wallet } from 'ethers'
import { buildOffer, parseProviderConfig, type InventoryGpu } from '../src/index.js'

const wallet = Wallet.createRandom()
const peerId = '12D3KooWGzh6Sr4AQHmmJYT7HtjLxaD2PRcCqq2SsQ8mMPV9bQMa'
const binding: PeerBinding = {
  peerId,
  payment: wallet.address as Address,
  proof: signPeerBinding({ peerId, payment: wallet.address as Address }, wallet.privateKey, marketDomain(31337n))
}

const gpu = (n: number, overrides: Partial<InventoryGpu> = {}): InventoryGpu => ({
  uuid: `GPU-${n}`, index: n, name: 'NVIDIA H100 80GB HBM3', class: 'H100-SXM-80GB', vendor: 'nvidia', memoryMiB: 81_559,
  computeCapability: '9.0', pciBusId: null, simulated: false, state: 'free', healthy: true, busy: false, problems: [], leaseId: null, ...overrides
})

const config = (layer: Record<string, unknown> = {}): ReturnType<typeof parseProviderConfig> =>
  parseProviderConfig({ dataDir: '/tmp/x', pricing: { perGpuHour: { 'H100-SXM-80GB': '2.00' } } }, layer)

const input = (gpus: InventoryGpu[], c = config()): Parameters<typeof buildOffer>[0] =>
  ({ config: c, gpus, host: null, peerId, binding, addresses: ['/ip4/127.0.0.1/tcp/1'], sequence: 7, now: 1_000_000 })

describe('buildOffer', () => {
  it('offers nothing when the job runner cannot run jobs, and leaves out the GPUs of a vendor it cannot serve', () => {
    const down = buildOffer({ ...input([gpu(0)]), runnerProblems: { engine: 'docker engine not reachable (Cannot connect): start dockerd', vendors: {} } })
    expect(down).toMatchObject({ offer: null, reason: 'the job runner cannot run jobs: docker engine not reachable (Cannot connect): start dockerd' })
    const noNvidia = { engine: null, vendors: { nvidia: 'docker has no NVIDIA runtime: install nvidia-container-toolkit' } }
    const real = buildOffer({ ...input([gpu(0), gpu(1)]), runnerProblems: noNvidia })
    expect(real.offer).toBeNull()
    expect(real).toMatchObject({ reason: expect.stringContaining('2 H100-SXM-80GB GPU(s) not offered: docker has no NVIDIA runtime: install nvidia-container-toolkit') })
    // Simulated GPUs of an NVIDIA model get no device at all: the missing runtime does not matter to them.
    const mixed = buildOffer({ ...input([gpu(0), gpu(1, { simulated: true })]), runnerProblems: noNvidia })
    expect(mixed.offer?.gpus).toEqual([expect.objectContaining({ simulated: true, countTotal: 1 })])
    expect(mixed.notes).toEqual(['1 H100-SXM-80GB GPU(s) not offered: docker has no NVIDIA runtime: install nvidia-container-toolkit'])
  })

  it('groups GPUs by class and simulation, counts free ones and prices them at the ask price', () => {
    const built = buildOffer(input([gpu(0), gpu(1, { state: 'reserved' }), gpu(2, { simulated: true }), gpu(3, { healthy: false, problems: ['hot'] })]))
    expect(built.offer?.gpus).toEqual([
      { class: 'H100-SXM-80GB', vendor: 'nvidia', memoryMiB: 81_559, computeCapability: '9.0', countFree: 1, countTotal: 2, pricePerGpuHour: 2_000_000n, simulated: false },
      { class: 'H100-SXM-80GB', vendor: 'nvidia', memoryMiB: 81_559, computeCapability: '9.0', countFree: 1, countTotal: 1, pricePerGpuHour: 2_000_000n, simulated: true }
    ])
    expect(built.offer).toMatchObject({ sequence: 7, issuedAt: 1_000_000, expiresAt: 1_120_000, minLeaseSec: 60, billingIntervalSec: 60 })
    // Signed and encoded, it passes the protocol's validation and size cap.
    const offer = built.offer
    if (offer == null) throw new Error('no offer')
    expect(encodeOffer({ ...offer, signature: signOffer(offer, wallet.privateKey, marketDomain(31337n)) }).byteLength).toBeLessThan(64 * 1024)
  })

  it('carries a fleet membership only while it outlives the offer', () => {
    const operator = Wallet.createRandom()
    const membership = (expiresAt: number): FleetMembership => {
      const fields = { operator: operator.address as Address, member: wallet.address as Address, peerId, expiresAt }
      return { ...fields, proof: signFleetMembership(fields, operator.privateKey, marketDomain(31337n)) }
    }
    const held = buildOffer({ ...input([gpu(0)]), fleet: membership(1_000_000 + 121_000) })
    expect(held.offer?.fleet?.operator).toBe(operator.address)
    const offer = held.offer
    if (offer == null) throw new Error('no offer')
    expect(encodeOffer({ ...offer, signature: signOffer(offer, wallet.privateKey, marketDomain(31337n)) }).byteLength).toBeGreaterThan(0)
    // It would expire while the offer is out (120 s): receivers would refuse the offer, so it is left off.
    const ending = buildOffer({ ...input([gpu(0)]), fleet: membership(1_000_000 + 60_000) })
    expect(ending.offer?.fleet).toBeNull()
    expect(ending.notes).toEqual([expect.stringMatching(/^fleet membership of operator 0x[0-9a-fA-F]{40} expires at .*: left out of the offer \(ask the operator to renew it\)$/)])
  })

  it('applies the surge from utilisation', () => {
    const c = config({ pricing: { perGpuHour: { 'H100-SXM-80GB': '2.00' }, surge: { enabled: true, thresholdPercent: 50, maxPercent: 100 } } })
    const built = buildOffer(input([gpu(0), gpu(1, { state: 'leased' }), gpu(2, { state: 'reserved' }), gpu(3, { state: 'leased' })], c))
    expect(built.offer?.gpus[0]?.pricePerGpuHour).toBe(3_000_000n) // 75 % leased: half-way to +100 %
  })

  it('says why nothing is published', () => {
    expect(buildOffer(input([]))).toMatchObject({ offer: null, reason: expect.stringMatching(/no GPUs found/) })
    expect(buildOffer(input([gpu(0, { healthy: false, problems: ['uncorrected ECC errors'] })]))).toMatchObject({ offer: null, reason: expect.stringMatching(/no healthy GPU.*uncorrected ECC/) })
    const unpriced = buildOffer(input([gpu(0, { class: 'RTX-4090' })]))
    expect(unpriced).toMatchObject({ offer: null, reason: expect.stringMatching(/no price for class RTX-4090/) })
  })
})
