// Runs the built CLI (build first: npx tsc -b): `gpumesh matcher start` as a child process, a provider
// node in this process publishing a signed offer to it (and one with simulated GPUs only), and `gpumesh offers`
// reading its book, with and without --include-simulated.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { runCli, spawnCli, type CliRun } from '../../../test/cli-helpers.js'
import { createNode, publish } from '@gpumesh/net'
import { OFFERS_TOPIC, encodeOffer, marketDomain, paymentKeyAddress, signOffer, signPeerBinding } from '@gpumesh/protocol'
import type { ChildProcess } from 'node:child_process'
import type { GpumeshNode } from '@gpumesh/net'
import type { OfferBody } from '@gpumesh/protocol'


let home: string
const children: ChildProcess[] = []
let provider: GpumeshNode | null = null
let simulatedProvider: GpumeshNode | null = null

beforeAll(async () => { home = await mkdtemp(join(tmpdir(), 'gpumesh-cli-matcher-')) })
afterAll(async () => {
  for (const c of children) if (c.exitCode == null && c.signalCode == null) c.kill('SIGKILL')
  await provider?.stop()
  await simulatedProvider?.stop()
  await rm(home, { recursive: true, force: true })
})
async function gpumesh (args: string[]): Promise<CliRun> {
  return await runCli(args, { env: { PATH: process.env.PATH ?? '', GPUMESH_HOME: home }, timeoutMs: 20_000 })
}

describe('gpumesh matcher start and gpumesh offers', () => {
  it('runs a matcher, lists a provider\'s offer from its book, and stops on SIGTERM', async () => {
    const matcher = spawnCli(['matcher', 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', home], { children })
    // Once matcher.json is there and whole.
    const info = await vi.waitFor(async () => JSON.parse(await readFile(join(home, 'matcher.json'), 'utf8')) as { peerId: string, addresses: string[] }, { timeout: 15_000 })
    expect(info.addresses[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    await vi.waitFor(() => { expect(matcher.stdout(), `matcher stderr:\n${matcher.stderr()}`).toContain(info.peerId) }, { timeout: 15_000 })
    expect((await stat(join(home, 'matcher-peer.key'))).mode & 0o777).toBe(0o600)

    const key = Wallet.createRandom().privateKey
    const payment = paymentKeyAddress(key)
    const domain = marketDomain(31337n)
    provider = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, bootstrap: info.addresses })
    const node = provider
    const peerId = node.peerId.toString()
    await vi.waitFor(() => { expect(node.services.pubsub.getSubscribers(OFFERS_TOPIC).map(String), `matcher stderr:\n${matcher.stderr()}`).toContain(info.peerId) }, { timeout: 15_000 })
    const now = Date.now()
    const body: OfferBody = {
      type: 'offer',
      peerId,
      binding: { peerId, payment, proof: signPeerBinding({ peerId, payment }, key, domain) },
      fleet: null,
      addresses: node.getMultiaddrs().map(String),
      gpus: [
        { class: 'H100-SXM-80GB', vendor: 'nvidia', memoryMiB: 81_559, computeCapability: '9.0', countFree: 4, countTotal: 8, pricePerGpuHour: 2_100_000n, simulated: false },
        { class: 'L4-24GB', vendor: 'nvidia', memoryMiB: 23_034, computeCapability: '8.9', countFree: 2, countTotal: 2, pricePerGpuHour: 450_000n, simulated: false }
      ],
      host: { cpuModel: null, cpuCores: null, memoryMiB: null, diskFreeMiB: null, os: null },
      token: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
      chainId: 31337n,
      escrow: '0x0000000000000000000000000000000000000000',
      region: 'eu-west',
      minLeaseSec: 600,
      maxLeaseSec: 86_400,
      billingIntervalSec: 300,
      paymentGraceSec: 120,
      sequence: 1,
      issuedAt: now,
      expiresAt: now + 600_000
    }
    await publish(node, OFFERS_TOPIC, encodeOffer({ ...body, signature: signOffer(body, key, domain) }))

    let listed: Array<{ peerId: string, gpus: Array<{ pricePerGpuHour: string }> }> = []
    await vi.waitFor(async () => {
      const r = await gpumesh(['offers', '--json', '--data-dir', home])
      listed = r.code === 0 ? JSON.parse(r.stdout) as typeof listed : []
      expect(listed.length, `matcher stderr:\n${matcher.stderr()}`).toBe(1)
    }, { timeout: 15_000 })
    expect(listed[0]?.peerId).toBe(peerId)
    expect(listed[0]?.gpus.map((g) => g.pricePerGpuHour)).toEqual(['2100000', '450000'])

    const table = await gpumesh(['offers', '--matcher', info.addresses[0] ?? '', '--class', 'H100-SXM-80GB', '--max-price', '2.5'])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/H100-SXM-80GB\s+4\/8\s+80 GiB\s+2\.10\s+eu-west/)
    expect(table.stdout).not.toContain('L4-24GB')
    expect((await gpumesh(['offers', '--max-price', '0.4'])).stdout).toContain('No offers match.')
    expect((await gpumesh(['offers', '--max-price', 'cheap'])).code).toBe(2)

    // A provider with only simulated GPUs: left out unless --include-simulated, and marked when listed.
    const simKey = Wallet.createRandom().privateKey
    const simPayment = paymentKeyAddress(simKey)
    simulatedProvider = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, bootstrap: info.addresses })
    const simNode = simulatedProvider
    const simPeerId = simNode.peerId.toString()
    await vi.waitFor(() => { expect(simNode.services.pubsub.getSubscribers(OFFERS_TOPIC).map(String), `matcher stderr:\n${matcher.stderr()}`).toContain(info.peerId) }, { timeout: 15_000 })
    const simBody: OfferBody = {
      ...body,
      peerId: simPeerId,
      binding: { peerId: simPeerId, payment: simPayment, proof: signPeerBinding({ peerId: simPeerId, payment: simPayment }, simKey, domain) },
      addresses: simNode.getMultiaddrs().map(String),
      gpus: [{ class: 'RTX-4090', vendor: 'nvidia', memoryMiB: 24_564, computeCapability: '8.9', countFree: 2, countTotal: 2, pricePerGpuHour: 400_000n, simulated: true }]
    }
    await publish(simNode, OFFERS_TOPIC, encodeOffer({ ...simBody, signature: signOffer(simBody, simKey, domain) }))
    let withSimulated: Array<{ peerId: string, simulated: boolean, gpus: Array<{ simulated: boolean }> }> = []
    await vi.waitFor(async () => {
      const r = await gpumesh(['offers', '--json', '--include-simulated'])
      withSimulated = r.code === 0 ? JSON.parse(r.stdout) as typeof withSimulated : []
      expect(withSimulated.length, `matcher stderr:\n${matcher.stderr()}`).toBe(2)
    }, { timeout: 15_000 })
    expect(withSimulated.map((o) => [o.peerId, o.simulated, o.gpus.map((g) => g.simulated)]))
      .toEqual([[simPeerId, true, [true]], [peerId, false, [false, false]]]) // cheapest first
    const withoutSimulated = await gpumesh(['offers', '--json'])
    expect((JSON.parse(withoutSimulated.stdout) as Array<{ peerId: string }>).map((o) => o.peerId)).toEqual([peerId])
    const plain = await gpumesh(['offers'])
    expect(plain.stdout).not.toContain('RTX-4090')
    const marked = await gpumesh(['offers', '--include-simulated'])
    expect(marked.stdout).toMatch(/RTX-4090 \(simulated\)\s+2\/2\s+24 GiB\s+0\.40/)
    expect(marked.stdout).toMatch(/H100-SXM-80GB\s+4\/8/)
    expect(marked.stdout).not.toContain('H100-SXM-80GB (simulated)')

    matcher.child.kill('SIGTERM')
    expect(await matcher.exited).toBe(0)
    expect(matcher.stdout()).toContain('matcher stopped')
  }, 120_000)
})
