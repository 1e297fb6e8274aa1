import { randomBytes } from 'node:crypto'
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HandlerError, createNode, handle, type GpumeshNode } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, LEASE_REJECT_CODES, ORDER_PROTOCOL, ZERO_ADDRESS as ZERO, bytesToHex, decodeLeaseProposal, decodeOrder,
  encodeLeaseDecision, encodeOrderResult, marketDomain, signLeaseTerms, type Address, type LeaseTerms, type Order
} from '@gpumesh/protocol'
import type { OrderError } from '../src/errors.js'
import { describeLeaseRejection, describeMatcherRefusal, placeOrder, proposeToProvider, signJobOrder } from '../src/order-client.js'
import { rejection } from './helpers.js'

const CHAIN = 31337n
const renterWallet = Wallet.createRandom()
const providerWallet = Wallet.createRandom()

function termsFor (order: Order, providerPeerId: string, overrides: Partial<LeaseTerms> = {}): LeaseTerms {
  return {
    leaseId: bytesToHex(randomBytes(32)),
    orderId: order.orderId,
    provider: providerWallet.address as Address,
    providerPeerId,
    renter: order.renter,
    renterPeerId: order.renterPeerId,
    token: order.token,
    chainId: order.chainId,
    escrow: '0x0000000000000000000000000000000000000000',
    pricePerGpuHour: 1_500_000n,
    gpus: ['GPU-a'],
    gpuClass: 'H100-SXM-80GB',
    durationSec: order.durationSec,
    billingIntervalSec: 60,
    paymentGraceSec: 60,
    startDeadline: Date.now() + 300_000,
    jobHash: order.jobHash,
    providerAddresses: [],
    acceptedAt: Date.now(),
    ...overrides
  }
}

describe('order client', () => {
  let renter: GpumeshNode
  let matcher: GpumeshNode
  let provider: GpumeshNode
  /** What the stand-in matcher does with the next order. */
  let matcherAnswer: (order: Order) => Uint8Array = () => { throw new HandlerError('BUSY', 'busy') }
  let providerAnswer: (gpuClass: string, order: Order) => Uint8Array = () => { throw new HandlerError('INTERNAL', 'x') }
  const classesTried: string[] = []

  const order = (): Order => signJobOrder({
    key: renterWallet,
    renterPeerId: renter.peerId.toString(),
    requirements: { gpuCount: 1, classes: ['A100-SXM4-80GB', 'H100-SXM-80GB'], minMemoryMiB: 0, minComputeCapability: null, region: null, operators: [], escrow: null, allowSimulated: true },
    maxPricePerGpuHour: 2_000_000n,
    durationSec: 600,
    token: ZERO,
    chainId: CHAIN,
    jobHash: bytesToHex(randomBytes(32)),
    now: Date.now()
  })

  beforeAll(async () => {
    const start = async (): Promise<GpumeshNode> => await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })
    ;[renter, matcher, provider] = await Promise.all([start(), start(), start()])
    await handle(matcher, ORDER_PROTOCOL, async (bytes) => matcherAnswer(decodeOrder(bytes)))
    await handle(provider, LEASE_PROTOCOL, async (bytes) => {
      const proposal = decodeLeaseProposal(bytes)
      classesTried.push(proposal.gpuClass)
      return providerAnswer(proposal.gpuClass, proposal.order)
    })
  })
  afterAll(async () => {
    await Promise.all([renter, matcher, provider].map(async (n) => await n?.stop()))
  })

  const fails = async (p: Promise<unknown>): Promise<OrderError> => await rejection(p, 'OrderError')

  it('maps every matcher and provider code to a sentence', () => {
    for (const code of ['MALFORMED', 'INVALID_FIELD', 'TOO_LARGE', 'BAD_SIGNATURE', 'EXPIRED', 'NOT_RENTER', 'DUPLICATE_ORDER', 'BUSY', 'STOPPING', 'RATE_LIMITED', 'TIMEOUT']) {
      const sentence = describeMatcherRefusal(code)
      expect(sentence).not.toContain(code)
      expect(sentence.length).toBeGreaterThan(15)
    }
    for (const code of LEASE_REJECT_CODES) {
      const sentence = describeLeaseRejection(code)
      expect(sentence).not.toContain(code)
    }
    expect(describeLeaseRejection('RENTER_BLOCKED')).toBe('this provider does not serve your address')
    expect(describeMatcherRefusal('SOMETHING_NEW')).toContain('SOMETHING_NEW')
  })

  it('turns a matcher refusal (remote code) into MATCHER_REFUSED with the sentence', async () => {
    matcherAnswer = () => { throw new HandlerError('NOT_RENTER', 'sent by another peer') }
    const err = await fails(placeOrder({ node: renter, matcher: matcher.getMultiaddrs(), order: order() }))
    expect(err.code).toBe('MATCHER_REFUSED')
    expect(err.remoteCode).toBe('NOT_RENTER')
    expect(err.message).toContain(describeMatcherRefusal('NOT_RENTER'))
  })

  it('resends once when the matcher is busy, and the second answer counts', async () => {
    let calls = 0
    matcherAnswer = (o) => {
      calls++
      if (calls === 1) throw new HandlerError('BUSY', 'busy')
      return encodeOrderResult({
        type: 'order-result', status: 'no-match', orderId: o.orderId,
        explanation: { offersConsidered: 3, fitting: 0, reasons: [{ code: 'TOO_FEW_GPUS', count: 3 }], cheapestPricePerGpuHour: null, declined: [], message: '3 offers: 3 too few GPUs' }
      })
    }
    const err = await fails(placeOrder({ node: renter, matcher: matcher.getMultiaddrs(), order: order() }))
    expect(calls).toBe(2)
    expect(err.code).toBe('NO_MATCH')
    expect(err.message).toBe('No provider leased: 3 offers: 3 too few GPUs')
    expect(err.explanation?.offersConsidered).toBe(3)
  })

  it('returns signed terms that match the order, and refuses terms that do not', async () => {
    const providerPeerId = provider.peerId.toString()
    let tamper: Partial<LeaseTerms> = {}
    matcherAnswer = (o) => {
      const terms = termsFor(o, providerPeerId, tamper)
      return encodeOrderResult({
        type: 'order-result', status: 'leased', orderId: o.orderId,
        lease: { terms, signature: signLeaseTerms(terms, providerWallet, marketDomain(CHAIN)) },
        providerPeerId, providerAddresses: provider.getMultiaddrs().map(String)
      })
    }
    const lease = await placeOrder({ node: renter, matcher: matcher.getMultiaddrs(), order: order() })
    expect(lease.via).toBe('matcher')
    expect(lease.providerPeerId).toBe(providerPeerId)
    expect(lease.terms.pricePerGpuHour).toBe(1_500_000n)

    tamper = { pricePerGpuHour: 2_500_000n }
    expect((await fails(placeOrder({ node: renter, matcher: matcher.getMultiaddrs(), order: order() }))).code).toBe('BAD_TERMS')
    tamper = { gpus: ['GPU-a', 'GPU-b'] }
    expect((await fails(placeOrder({ node: renter, matcher: matcher.getMultiaddrs(), order: order() }))).code).toBe('BAD_TERMS')
    // Signed by a key other than the one the terms name.
    matcherAnswer = (o) => {
      const terms = termsFor(o, providerPeerId)
      return encodeOrderResult({
        type: 'order-result', status: 'leased', orderId: o.orderId,
        lease: { terms, signature: signLeaseTerms(terms, Wallet.createRandom(), marketDomain(CHAIN)) },
        providerPeerId, providerAddresses: []
      })
    }
    const forged = await fails(placeOrder({ node: renter, matcher: matcher.getMultiaddrs(), order: order() }))
    expect(forged.code).toBe('BAD_TERMS')
    expect(forged.message).toContain('not signed by the provider')
  })

  it('says the matcher is unreachable when nothing listens', async () => {
    const gone = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })
    const addresses = gone.getMultiaddrs()
    await gone.stop()
    const err = await fails(placeOrder({ node: renter, matcher: addresses, order: order(), timeoutMs: 3_000, attempts: 1 }))
    expect(err.code).toBe('MATCHER_UNREACHABLE')
    expect(err.message).toMatch(/^Could not reach the matcher/)
  })

  it('proposes directly, trying the next class when one is unsupported, and names a rejection in words', async () => {
    const providerPeerId = provider.peerId.toString()
    providerAnswer = (gpuClass, o) => {
      if (gpuClass !== 'H100-SXM-80GB') return encodeLeaseDecision({ type: 'lease-decision', accepted: false, orderId: o.orderId, code: 'UNSUPPORTED_REQUIREMENTS', message: `no ${gpuClass}` })
      const terms = termsFor(o, providerPeerId, { pricePerGpuHour: 2_000_000n })
      return encodeLeaseDecision({ type: 'lease-decision', accepted: true, terms, signature: signLeaseTerms(terms, providerWallet, marketDomain(CHAIN)) })
    }
    classesTried.length = 0
    const target = provider.getMultiaddrs()
    const lease = await proposeToProvider({ node: renter, provider: target, order: order() })
    expect(classesTried).toEqual(['A100-SXM4-80GB', 'H100-SXM-80GB'])
    expect(lease.via).toBe('provider')
    expect(lease.terms.gpuClass).toBe('H100-SXM-80GB')

    providerAnswer = (_c, o) => encodeLeaseDecision({ type: 'lease-decision', accepted: false, orderId: o.orderId, code: 'RENTER_BLOCKED', message: 'renter is on leases.denyRenters' })
    classesTried.length = 0
    const err = await fails(proposeToProvider({ node: renter, provider: target, order: order() }))
    expect(classesTried).toHaveLength(1)
    expect(err.code).toBe('PROVIDER_REJECTED')
    expect(err.rejectCode).toBe('RENTER_BLOCKED')
    expect(err.message).toContain('this provider does not serve your address')
  })
})
