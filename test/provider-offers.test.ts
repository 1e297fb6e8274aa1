import { decodeOffer, encodeOffer, marketDomain, signFleetMembership, signOffer, signPeerBinding, verifyOffer, OFFERS_TOPIC, type Address, type FleetMembership, type Offer } from '@gpumesh/protocol'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generatePeerKey, type GpumeshNode } from '@gpumesh/net'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Wallet } from 'ethers'
import { recordJudgements } from '../packages/net/test/nodes.js'
import { dialProvider, newRenter, proposal, requirements, signedOrder, startClient, startProvider, StandInProber, tempDir, type TestProvider } from './provider-helpers.js'
import { LEASE_PROTOCOL, decodeLeaseDecision, encodeLeaseProposal } from '@gpumesh/protocol'
import { request } from '@gpumesh/net'

/** Collects verified offers a listening node receives on the offers topic. */
function listen (node: GpumeshNode): Offer[] {
  const offers: Offer[] = []
  node.services.pubsub.subscribe(OFFERS_TOPIC)
  node.services.pubsub.addEventListener('message', (evt) => {
    if (evt.detail.topic !== OFFERS_TOPIC) return
    const offer = decodeOffer(evt.detail.data, { now: Date.now() })
    verifyOffer(offer, marketDomain(offer.chainId)) // signature, binding proof
    if (evt.detail.type === 'signed' && evt.detail.from.toString() !== offer.peerId) throw new Error('offer from another peer')
    offers.push(offer)
  })
  return offers
}

describe('offers', () => {
  let daemon: TestProvider
  let listener: GpumeshNode
  let offers: Offer[]

  beforeAll(async () => {
    listener = await startClient()
    offers = listen(listener)
    daemon = await startProvider({ gpus: 8, config: { offers: { region: 'eu-test' } } })
    await dialProvider(listener, daemon.provider)
  })

  afterAll(async () => {
    await listener?.stop()
    await daemon?.stop()
  })

  it('publishes a signed offer that a listening node receives and verifies', async () => {
    // The first offer may go out before the mesh forms; the next publication must arrive.
    await vi.waitFor(async () => { await daemon.provider.publisher?.publishNow(); expect(offers.length).toBeGreaterThan(0) }, { timeout: 10_000 })
    const offer = offers.at(-1) as Offer
    expect(offer.peerId).toBe(daemon.provider.peerId)
    expect(offer.binding.payment).toBe(daemon.provider.paymentAddress)
    expect(verifyOffer(offer, marketDomain(31337n))).toBe(daemon.provider.paymentAddress)
    expect(offer.gpus).toEqual([expect.objectContaining({ class: 'H100-SXM-80GB', countFree: 8, countTotal: 8, simulated: true, pricePerGpuHour: 2_000_000n })])
    expect(offer.region).toBe('eu-test')
    expect(offer.addresses.length).toBeGreaterThan(0)
    expect(offer.expiresAt - offer.issuedAt).toBe(120_000)
    expect(offer.host.cpuModel).toBe('Test CPU')
    const status = daemon.provider.status()
    expect(status.offer.reason).toBeNull()
    expect(status.offer.sequence).toBeGreaterThanOrEqual(offer.sequence)
    expect(status.offer.tokenDecimals).toBe(6)
  })

  it('republishes at once when capacity changes: a lease starts, a GPU turns unhealthy', async () => {
    const before = offers.length
    const lastSequence = (offers.at(-1) as Offer).sequence
    const node = daemon.provider.node as GpumeshNode
    const order = signedOrder(newRenter(), listener.peerId.toString(), {})
    const decision = decodeLeaseDecision(await request(listener, node.peerId, LEASE_PROTOCOL, encodeLeaseProposal(proposal(order))))
    expect(decision.accepted).toBe(true)
    await vi.waitFor(() => { expect(offers.length > before && (offers.at(-1) as Offer).gpus[0]?.countFree === 7).toBeTruthy() }, { timeout: 5_000 })
    expect((offers.at(-1) as Offer).sequence).toBeGreaterThan(lastSequence)

    const gpu = daemon.prober.gpus[7]
    if (gpu == null) throw new Error('no GPU 7')
    gpu.healthy = false
    gpu.problems = ['temperature 95 °C is at or above 90 °C']
    await daemon.provider.inventory.refresh()
    await vi.waitFor(() => { expect((offers.at(-1) as Offer).gpus[0]?.countTotal).toBe(7) }, { timeout: 5_000 })
    expect((offers.at(-1) as Offer).gpus[0]?.countFree).toBe(6)
  })

  it('publishes nothing, and says why, when nothing healthy is for sale', async () => {
    for (const gpu of daemon.prober.gpus) { gpu.healthy = false; gpu.problems = ['uncorrected ECC errors'] }
    await daemon.provider.inventory.refresh()
    const count = offers.length
    const state = await (daemon.provider.publisher as NonNullable<typeof daemon.provider.publisher>).publishNow()
    expect(state.reason).toMatch(/no healthy GPU to sell/)
    expect(daemon.provider.status().offer.reason).toMatch(/no healthy GPU/)
    // Had an offer gone out, it would reach the listener before any later one (one stream, in order):
    // with the GPUs healthy again, the offers that arrive from here on all have GPUs for sale.
    for (const gpu of daemon.prober.gpus) { gpu.healthy = true; gpu.problems = [] }
    await daemon.provider.inventory.refresh()
    await vi.waitFor(async () => { await daemon.provider.publisher?.publishNow(); expect(offers.length).toBeGreaterThan(count) }, { timeout: 10_000 })
    expect(offers.slice(count).map((o) => o.gpus[0]?.countTotal)).toEqual(offers.slice(count).map(() => 8))
  })
})

describe('offer sequence and reconciliation across restarts', () => {
  it('keeps the sequence increasing and expires accepted leases whose deadline passed while down', async () => {
    const temp = await tempDir()
    const peerKey = await generatePeerKey()
    const paymentKey = Wallet.createRandom().privateKey
    let now = Date.now()
    const clock = { now: () => now, monotonicNow: () => now }
    const prober = new StandInProber(2)
    const client = await startClient()
    try {
      const first = await startProvider({ dataDir: temp.dir, peerKey, paymentKey, clock, prober })
      const seq1 = (await first.provider.publisher?.publishNow())?.offer?.sequence ?? 0
      await dialProvider(client, first.provider)
      const order = signedOrder(newRenter(), client.peerId.toString(), { expiresAt: now + 3_600_000 })
      const decision = decodeLeaseDecision(await request(client, (first.provider.node as GpumeshNode).peerId, LEASE_PROTOCOL, encodeLeaseProposal(proposal(order))))
      if (!decision.accepted) throw new Error(`not accepted: ${decision.code}`)
      await first.stop()

      now -= 1_000_000 // the wall clock went back: the sequence must still increase
      const second = await startProvider({ dataDir: temp.dir, peerKey, paymentKey, clock, prober })
      const seq2 = (await second.provider.publisher?.publishNow())?.offer?.sequence ?? 0
      expect(seq2).toBeGreaterThan(seq1)
      expect(second.provider.ledger.getLease(decision.terms.leaseId)?.state).toBe('accepted')
      await second.stop()

      now += 1_000_000 + 301_000 // past the 300 s start deadline
      const third = await startProvider({ dataDir: temp.dir, peerKey, paymentKey, clock, prober })
      expect(third.provider.ledger.getLease(decision.terms.leaseId)?.state).toBe('expired')
      expect(third.provider.ledger.listGpus().every((g) => g.state === 'free')).toBe(true)
      // Start and stop twice are harmless.
      await third.provider.start()
      await third.stop()
      await third.provider.stop()
    } finally {
      await client.stop()
      await temp.remove()
    }
  })
})

describe('a peer that subscribes after the offer went out', () => {
  it('gets the offer within seconds, not at the next round', async () => {
    // Rounds ten minutes apart: only the publication prompted by the new subscriber can arrive in time.
    const daemon = await startProvider({ gpus: 2, config: { offers: { republishSec: 600, ttlSec: 1200 } } })
    const late = await startClient()
    try {
      await vi.waitFor(() => { expect(daemon.provider.publisher?.state.offer != null).toBeTruthy() }, { timeout: 5_000 })
      const first = daemon.provider.publisher?.state.offer as Offer
      const offers = listen(late)
      await dialProvider(late, daemon.provider)
      await vi.waitFor(() => { expect(offers.length).toBeGreaterThan(0) }, { timeout: 10_000 })
      expect(offers[0]?.peerId).toBe(daemon.provider.peerId)
      expect(offers[0]?.sequence).toBeGreaterThan(first.sequence)
    } finally {
      await late.stop()
      await daemon.stop()
    }
  }, 20_000)
})

describe('relaying other providers\' offers', () => {
  it('passes genuine offers on and drops forged ones: a listener behind the provider never sees them', async () => {
    // hostile ─ provider ─ listener, and an honest provider behind the provider too; no other links.
    const relay = await startProvider({ gpus: 1 })
    const honest = await startProvider({ gpus: 1 })
    const hostile = await startClient()
    const listener = await startClient()
    const received: Array<{ author: string, offer: Offer | null }> = []
    listener.services.pubsub.subscribe(OFFERS_TOPIC)
    listener.services.pubsub.addEventListener('message', (evt) => {
      if (evt.detail.topic !== OFFERS_TOPIC || evt.detail.type !== 'signed') return
      let offer: Offer | null = null
      try { offer = decodeOffer(evt.detail.data, { now: Date.now() }) } catch { offer = null }
      received.push({ author: evt.detail.from.toString(), offer })
    })
    hostile.services.pubsub.subscribe(OFFERS_TOPIC)
    const genuine: Offer[] = []
    hostile.services.pubsub.addEventListener('message', (evt) => {
      if (evt.detail.topic === OFFERS_TOPIC) genuine.push(decodeOffer(evt.detail.data, { now: Date.now() }))
    })
    try {
      for (const node of [listener, hostile, honest.provider.node as GpumeshNode]) await dialProvider(node, relay.provider)
      const fromHonest = (): number => received.filter((r) => r.author === honest.provider.peerId).length
      // The honest offer crosses the relay (once the meshes have formed).
      await vi.waitFor(async () => { await honest.provider.publisher?.publishNow(); expect(fromHonest() > 0 && genuine.length > 0).toBeTruthy() }, { timeout: 15_000 })

      // What a hostile peer sends: someone else's genuine offer replayed, and that provider's payment
      // address bound by the hostile peer's own key (the binding proof does not verify).
      const victim = genuine.find((o) => o.peerId === honest.provider.peerId) ?? genuine[0] as Offer
      const hostileKey = Wallet.createRandom().privateKey
      const hostileId = hostile.peerId.toString()
      const body = { ...victim, peerId: hostileId, binding: { peerId: hostileId, payment: victim.binding.payment, proof: signPeerBinding({ peerId: hostileId, payment: victim.binding.payment }, hostileKey, marketDomain(31337n)) } }
      const { signature: _old, ...unsigned } = body
      const selfBound: Offer = { ...unsigned, signature: signOffer(unsigned, hostileKey, marketDomain(31337n)) }
      const judged = recordJudgements(relay.provider.node as GpumeshNode, OFFERS_TOPIC)
      for (const offer of [victim, selfBound]) await hostile.services.pubsub.publish(OFFERS_TOPIC, encodeOffer(offer))
      // The relay judges a message before it relays it: once it rejected both, neither can cross it.
      await vi.waitFor(() => { expect(judged.results(hostileId)).toEqual(['reject', 'reject']) }, { timeout: 10_000 })
      judged.restore()

      // Honest traffic keeps flowing through the relay meanwhile; the hostile messages never do.
      const before = fromHonest()
      await vi.waitFor(async () => { await honest.provider.publisher?.publishNow(); expect(fromHonest()).toBeGreaterThan(before) }, { timeout: 10_000 })
      expect(received.filter((r) => r.author === hostileId)).toEqual([])
      expect(received.every((r) => r.offer != null && r.author === r.offer.peerId)).toBe(true)
    } finally {
      await listener.stop()
      await hostile.stop()
      await honest.stop()
      await relay.stop()
    }
  }, 40_000)
})

describe('a fleet member', () => {
  it('carries its operator\'s signed membership in offers and takes orders for that operator only', async () => {
    const temp = await tempDir()
    const peerKey = await generatePeerKey()
    const peerId = peerIdFromPrivateKey(peerKey).toString()
    const payment = Wallet.createRandom()
    const operator = Wallet.createRandom()
    const membership = (forPeer: string): FleetMembership => {
      const fields = { operator: operator.address as Address, member: payment.address as Address, peerId: forPeer, expiresAt: Date.now() + 86_400_000 }
      return { ...fields, proof: signFleetMembership(fields, operator.privateKey, marketDomain(31337n)) }
    }
    await writeFile(join(temp.dir, 'fleet.json'), JSON.stringify(membership(peerId)))
    const client = await startClient()
    const offers = listen(client)
    const daemon = await startProvider({ dataDir: temp.dir, peerKey, paymentKey: payment.privateKey, gpus: 2, config: { offers: { fleetMembership: 'fleet.json' } } })
    try {
      await dialProvider(client, daemon.provider)
      await vi.waitFor(async () => { await daemon.provider.publisher?.publishNow(); expect(offers.length).toBeGreaterThan(0) }, { timeout: 10_000 })
      const offer = offers.at(-1) as Offer
      expect(offer.fleet).toMatchObject({ operator: operator.address, member: payment.address, peerId })
      expect(verifyOffer(offer, marketDomain(31337n))).toBe(payment.address) // the fleet proof verified with it
      expect(daemon.provider.status().fleet).toEqual({ operator: operator.address, expiresAt: offer.fleet?.expiresAt })

      const decide = async (operators: Address[]): Promise<string> => {
        const order = signedOrder(newRenter(), client.peerId.toString(), { requirements: requirements({ operators }) })
        const d = decodeLeaseDecision(await request(client, (daemon.provider.node as GpumeshNode).peerId, LEASE_PROTOCOL, encodeLeaseProposal(proposal(order))))
        return d.accepted ? 'ACCEPTED' : `${d.code}: ${d.message}`
      }
      expect(await decide([Wallet.createRandom().address as Address])).toBe(`UNSUPPORTED_REQUIREMENTS: this provider's fleet operator ${operator.address} is not one the order accepts`)
      expect(await decide([operator.address as Address])).toBe('ACCEPTED')
    } finally {
      await client.stop()
      await daemon.stop()
    }

    // A membership for another node stops the start, in words.
    await writeFile(join(temp.dir, 'fleet.json'), JSON.stringify(membership(client.peerId.toString())))
    const err = await startProvider({ dataDir: temp.dir, peerKey, paymentKey: payment.privateKey, gpus: 2, config: { offers: { fleetMembership: 'fleet.json' } } }).then(() => null, (e: unknown) => e)
    expect(err).toMatchObject({ name: 'ProviderStartError', code: 'BAD_FLEET_MEMBERSHIP' })
    expect((err as Error).message).toContain(`Ask the operator to sign one with --peer-id ${peerId} --member ${payment.address}.`)
    await temp.remove()
  }, 30_000)
})
