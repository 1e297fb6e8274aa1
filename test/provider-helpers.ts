/**
 * Shared pieces of the provider scenario tests: a stand-in prober with simulated H100s whose health the
 * test controls, configs in temp dirs, renter keys and signed orders and proposals.
 */
import { expect, vi } from 'vitest'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Wallet } from 'ethers'
import pino from 'pino'
import { createNode, generatePeerKey, type GpumeshNode } from '@gpumesh/net'
import {
  ZERO_ADDRESS, bytesToHex, encodeLeaseProposal, marketDomain, signOrder, type Address, type Bytes32,
  type LeaseProposal, type Order, type OrderRequirements
} from '@gpumesh/protocol'
import {
  DEFAULT_GPU_CLASSES_FILE, createProvider, parseGpuClasses, parseProviderConfig, type ConfigLayer, type GpuInfo,
  type InventoryProber, type Provider, type ProbeResult, type RawGpu
} from '@gpumesh/provider'
import { simulatedGpus } from '../packages/provider/src/probe/simulate.js'

export const CLASS = 'H100-SXM-80GB'
export const PRICE = 2_000_000n // 2.00 in 6-decimal base units
export const CHAIN_ID = 31337n
export const ZERO: Address = ZERO_ADDRESS

const GPU_CLASSES = parseGpuClasses(JSON.parse(readFileSync(DEFAULT_GPU_CLASSES_FILE, 'utf8')))

/** GPU `n` of the daemon's own `probe.simulate` H100s (its uuid, index and class readings), healthy and free. */
export function simulatedGpu (n: number, overrides: Partial<GpuInfo> = {}): GpuInfo {
  const raw = simulatedGpus([{ model: CLASS, count: n + 1 }], GPU_CLASSES, 0)[n] as RawGpu
  return { ...raw, class: CLASS, spec: null, healthy: true, busy: false, problems: [], simulated: true, ...overrides }
}

/** A prober whose GPUs the test edits (`gpus`), answering instantly. */
export class StandInProber implements InventoryProber {
  gpus: GpuInfo[]
  probes = 0
  constructor (count: number) {
    this.gpus = Array.from({ length: count }, (_, i) => simulatedGpu(i))
  }

  async probe (): Promise<ProbeResult> {
    this.probes++
    return {
      host: {
        hostname: 'test', os: { platform: 'linux', distro: 'Test Linux', release: '1', kernel: null, arch: 'x64' },
        cpu: { model: 'Test CPU', cores: 8, physicalCores: 4 }, memoryTotalMiB: 65_536, memoryAvailableMiB: 60_000,
        dataDir: '/tmp', diskFreeMiB: 100_000
      },
      gpus: this.gpus.map((g) => ({ ...g })),
      errors: [],
      probedAt: Date.now()
    }
  }
}

export async function tempDir (): Promise<{ dir: string, remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'gpumesh-provider-'))
  return { dir, remove: async () => { await rm(dir, { recursive: true, force: true }) } }
}

export const silentLogger = pino({ level: process.env.GPUMESH_TEST_LOG ?? 'silent' })

export function testConfig (dataDir: string, layer: ConfigLayer = {}): ReturnType<typeof parseProviderConfig> {
  return parseProviderConfig({
    dataDir,
    network: { listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false },
    pricing: { perGpuHour: { [CLASS]: '2.00' } },
    api: { port: 0 },
    probe: { intervalSec: 3600 }
  }, layer)
}

export interface TestProvider {
  provider: Provider
  prober: StandInProber
  dataDir: string
  stop: () => Promise<void>
}

export async function startProvider (options: { gpus?: number, config?: ConfigLayer, dataDir?: string, paymentKey?: string, peerKey?: Awaited<ReturnType<typeof generatePeerKey>>, clock?: { now: () => number, monotonicNow: () => number }, prober?: StandInProber, env?: Record<string, string | undefined> } = {}): Promise<TestProvider> {
  const temp = options.dataDir == null ? await tempDir() : null
  const dataDir = options.dataDir ?? (temp as { dir: string }).dir
  const prober = options.prober ?? new StandInProber(options.gpus ?? 8)
  const provider = createProvider(testConfig(dataDir, options.config), {
    identity: { peerKey: options.peerKey ?? await generatePeerKey(), paymentKey: options.paymentKey ?? Wallet.createRandom().privateKey },
    logger: silentLogger,
    prober,
    nodeOptions: { loopback: true },
    ...(options.clock != null ? { clock: options.clock } : {}),
    ...(options.env != null ? { env: options.env } : {})
  })
  await provider.start()
  return {
    provider,
    prober,
    dataDir,
    stop: async () => {
      await provider.stop()
      await temp?.remove()
    }
  }
}

export async function startClient (): Promise<GpumeshNode> {
  return createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })
}

export interface Renter {
  key: string
  address: Address
}

export function newRenter (): Renter {
  const wallet = Wallet.createRandom()
  return { key: wallet.privateKey, address: wallet.address as Address }
}

export const requirements = (overrides: Partial<OrderRequirements> = {}): OrderRequirements => ({
  gpuCount: 1, classes: [CLASS], minMemoryMiB: 0, minComputeCapability: null, region: null, operators: [],
  escrow: null, allowSimulated: true, ...overrides
})

/** A renter's signed order; `orderId` random unless given. */
export function signedOrder (renter: Renter, renterPeerId: string, overrides: Partial<Omit<Order, 'type' | 'signature'>> = {}): Order {
  const fields = {
    orderId: bytesToHex(randomBytes(32)) as Bytes32,
    renter: renter.address,
    renterPeerId,
    requirements: requirements(),
    maxPricePerGpuHour: PRICE * 2n,
    durationSec: 3600,
    token: ZERO,
    chainId: CHAIN_ID,
    jobHash: bytesToHex(randomBytes(32)) as Bytes32,
    expiresAt: Date.now() + 600_000,
    ...overrides
  }
  return { type: 'order', ...fields, signature: signOrder(fields, renter.key, marketDomain(fields.chainId)) }
}

export function proposal (order: Order, overrides: Partial<Omit<LeaseProposal, 'type' | 'order'>> = {}): LeaseProposal {
  return { type: 'lease-proposal', order, pricePerGpuHour: PRICE, offerSequence: 1, gpuClass: CLASS, ...overrides }
}

export const encodeProposal = encodeLeaseProposal
/** Connects `client` to the provider's libp2p node. */
export async function dialProvider (client: GpumeshNode, provider: Provider): Promise<void> {
  const node = provider.node
  if (node == null) throw new Error('provider not started')
  await client.dial(node.getMultiaddrs())
  // Both ends must know the connection before many streams are opened on it at once.
  await vi.waitFor(() => { expect(node.getConnections(client.peerId).length).toBeGreaterThan(0) }, { timeout: 10_000 })
  await client.services.ping.ping(node.peerId)
}
