/** Real libp2p nodes on 127.0.0.1 for the matcher service tests: providers, renters, signed messages. */
import { expect, vi } from 'vitest'
import { randomBytes } from 'node:crypto'
import { Wallet } from 'ethers'
import { createNode, handle, publish } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, OFFERS_TOPIC, decodeLeaseProposal, encodeLeaseDecision, encodeOffer, marketDomain, paymentKeyAddress,
  signLeaseTerms, signOffer, signOrder, signPeerBinding
} from '@gpumesh/protocol'
import type { GpumeshNode } from '@gpumesh/net'
import { gpu, offer } from './helpers.js'
import type { Address, Bytes32, LeaseDecision, LeaseProposal, LeaseRejectCode, Offer, OfferBody, OfferedGpus, Order, OrderRequirements } from '@gpumesh/protocol'

export const CHAIN_ID = 31337n
export const DOMAIN = marketDomain(CHAIN_ID)
export const TOKEN: Address = '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512'

export async function loopbackNode (bootstrap: string[] = []): Promise<GpumeshNode> {
  return createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, ...(bootstrap.length > 0 ? { bootstrap } : {}) })
}
export function bytes32 (): Bytes32 {
  return `0x${randomBytes(32).toString('hex')}`
}

export type ProviderBehaviour = 'accept' | LeaseRejectCode | 'silent'

/** A stand-in provider: a node, a payment key, signed offers, and a lease handler answering as told. */
export class FakeProvider {
  readonly key = Wallet.createRandom().privateKey
  readonly payment = paymentKeyAddress(this.key)
  behaviour: ProviderBehaviour = 'accept'
  readonly proposals: LeaseProposal[] = []
  sequence = 0

  constructor (readonly node: GpumeshNode) {}

  get peerId (): string { return this.node.peerId.toString() }

  async start (): Promise<void> {
    await handle(this.node, LEASE_PROTOCOL, async (bytes) => {
      const proposal = decodeLeaseProposal(bytes)
      this.proposals.push(proposal)
      if (this.behaviour === 'silent') return await new Promise<Uint8Array>(() => {})
      if (this.behaviour !== 'accept') {
        return encodeLeaseDecision({ type: 'lease-decision', accepted: false, orderId: proposal.order.orderId, code: this.behaviour, message: 'test' })
      }
      return encodeLeaseDecision(this.decide(proposal))
    })
  }

  decide (proposal: LeaseProposal): LeaseDecision {
    const order = proposal.order
    const now = Date.now()
    const terms = {
      leaseId: bytes32(),
      orderId: order.orderId,
      provider: this.payment,
      providerPeerId: this.peerId,
      renter: order.renter,
      renterPeerId: order.renterPeerId,
      token: order.token,
      chainId: order.chainId,
      escrow: '0x0000000000000000000000000000000000000000' as const,
      pricePerGpuHour: proposal.pricePerGpuHour,
      gpus: Array.from({ length: order.requirements.gpuCount }, (_, i) => `GPU-${i}`),
      gpuClass: proposal.gpuClass,
      durationSec: order.durationSec,
      billingIntervalSec: 300,
      paymentGraceSec: 60,
      startDeadline: now + 120_000,
      jobHash: order.jobHash,
      providerAddresses: this.node.getMultiaddrs().map(String),
      acceptedAt: now
    }
    return { type: 'lease-decision', accepted: true, terms, signature: signLeaseTerms(terms, this.key, DOMAIN) }
  }

  offer (gpus: Array<Partial<OfferedGpus>>, overrides: Partial<OfferBody> = {}, ttlMs = 60_000): Offer {
    const now = Date.now()
    const { signature: _placeholder, ...base } = offer(this.peerId, {
      binding: { peerId: this.peerId, payment: this.payment, proof: signPeerBinding({ peerId: this.peerId, payment: this.payment }, this.key, DOMAIN) },
      addresses: this.node.getMultiaddrs().map(String),
      gpus: gpus.map((g) => gpu({ countFree: 4, ...g })),
      token: TOKEN,
      chainId: CHAIN_ID,
      sequence: ++this.sequence,
      issuedAt: now,
      expiresAt: now + ttlMs
    })
    const body: OfferBody = { ...base, ...overrides }
    return { ...body, signature: signOffer(body, this.key, DOMAIN) }
  }

  async publish (offer: Offer): Promise<void> {
    await publish(this.node, OFFERS_TOPIC, encodeOffer(offer))
  }
}

/** Waits until `node` knows that every peer in `peers` subscribes to the offers topic. */
export async function untilSubscribed (node: GpumeshNode, peers: GpumeshNode[]): Promise<void> {
  await vi.waitFor(() => {
    const subscribers = node.services.pubsub.getSubscribers(OFFERS_TOPIC).map(String)
    expect(peers.every((p) => subscribers.includes(p.peerId.toString()))).toBeTruthy()
  }, { timeout: 10_000 })
}

export class Renter {
  readonly key = Wallet.createRandom().privateKey
  readonly address = paymentKeyAddress(this.key)
  constructor (readonly node: GpumeshNode) {}

  order (requirements: Partial<OrderRequirements> = {}, overrides: Partial<Omit<Order, 'signature'>> = {}): Order {
    const body: Omit<Order, 'signature'> = {
      type: 'order',
      orderId: bytes32(),
      renter: this.address,
      renterPeerId: this.node.peerId.toString(),
      requirements: { gpuCount: 2, classes: [], minMemoryMiB: 0, minComputeCapability: null, region: null, operators: [], escrow: null, allowSimulated: false, ...requirements },
      maxPricePerGpuHour: 3_000_000n,
      durationSec: 3600,
      token: TOKEN,
      chainId: CHAIN_ID,
      jobHash: bytes32(),
      expiresAt: Date.now() + 60_000,
      ...overrides
    }
    return { ...body, signature: signOrder(body, this.key, DOMAIN) }
  }
}
