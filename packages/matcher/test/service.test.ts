// The matcher as a service, on real libp2p nodes on 127.0.0.1: offers over gossip, orders and book
// queries over request/response, proposals to stand-in providers that sign their decisions.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { RequestError, publish, request } from '@gpumesh/net'
import {
  BOOK_PROTOCOL, OFFERS_TOPIC, OFFER_GOSSIP_RATE_LIMIT, ORDER_PROTOCOL, decodeBookPage, decodeOrderResult, encodeBookQuery, encodeOrder, signOffer,
  signPeerBinding, verifyLeaseTerms, verifyOffer
} from '@gpumesh/protocol'
import { createMatcher } from '@gpumesh/matcher'
import type { GpumeshNode } from '@gpumesh/net'
import type { BookFilters, BookPage, Offer, OfferBody, Order, OrderResult } from '@gpumesh/protocol'
import type { Matcher, OfferVerdict } from '@gpumesh/matcher'
import { DOMAIN, FakeProvider, Renter, loopbackNode, untilSubscribed } from './network.js'
import { recordJudgements } from '../../net/test/nodes.js'

let matcher: Matcher
let second: Matcher
const verdicts: OfferVerdict[] = []
const nodes: GpumeshNode[] = []
let cheap: FakeProvider
let middle: FakeProvider
let dear: FakeProvider
let renter: Renter

async function provider (bootstrap: string[]): Promise<FakeProvider> {
  const node = await loopbackNode(bootstrap)
  nodes.push(node)
  const p = new FakeProvider(node)
  await p.start()
  return p
}

function addrs (m: Matcher): string[] {
  return m.node.getMultiaddrs().map(String)
}

async function submit (order: Order | Uint8Array, via: Matcher = matcher): Promise<OrderResult> {
  const bytes = await request(renter.node, via.node.getMultiaddrs(), ORDER_PROTOCOL, order instanceof Uint8Array ? order : encodeOrder(order), { timeoutMs: 15_000 })
  return decodeOrderResult(bytes)
}

const ANY: BookFilters = { gpuClass: null, minGpus: null, minMemoryMiB: null, maxPricePerGpuHour: null, region: null, operator: null, includeSimulated: false }

async function page (filters: Partial<BookFilters> = {}, offset = 0, limit = 50, via: Matcher = matcher): Promise<BookPage> {
  const bytes = await request(renter.node, via.node.getMultiaddrs(), BOOK_PROTOCOL, encodeBookQuery({ type: 'book-query', filters: { ...ANY, ...filters }, offset, limit }))
  return decodeBookPage(bytes)
}

beforeAll(async () => {
  matcher = createMatcher({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, pruneIntervalMs: 100, proposalTimeoutMs: 1_500 }, { onOfferVerdict: (v) => verdicts.push(v) })
  second = createMatcher({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, pruneIntervalMs: 100 })
  await Promise.all([matcher.start(), second.start()])
  const both = [...addrs(matcher), ...addrs(second)]
  ;[cheap, middle, dear] = await Promise.all([provider(both), provider(both), provider(both)])
  renter = new Renter(await loopbackNode())
  nodes.push(renter.node)
  for (const p of [cheap, middle, dear]) await untilSubscribed(p.node, [matcher.node, second.node])
  await cheap.publish(cheap.offer([{ pricePerGpuHour: 1_500_000n }]))
  await middle.publish(middle.offer([{ pricePerGpuHour: 2_000_000n, class: 'A100', memoryMiB: 40_960, computeCapability: '8.0' }], { region: 'us' }))
  await dear.publish(dear.offer([{ pricePerGpuHour: 2_500_000n, countFree: 8 }]))
  await vi.waitFor(() => { expect(matcher.book.size === 3 && second.book.size === 3).toBeTruthy() }, { timeout: 10_000 })
})

afterAll(async () => {
  await Promise.all([matcher?.stop(), second?.stop()])
  await Promise.all(nodes.map(async (n) => { await n.stop() }))
})

describe('matching over the network', () => {
  it('two matchers see the same offers', () => {
    const ids = (m: Matcher): string[] => [...m.book.offers()].map((o) => o.peerId).sort()
    expect(ids(matcher)).toEqual([cheap.peerId, middle.peerId, dear.peerId].sort())
    expect(ids(second)).toEqual(ids(matcher))
  })

  it('leases from the cheapest fitting provider and returns terms signed by its bound payment key', async () => {
    const order = renter.order()
    const result = await submit(order)
    expect(result.status).toBe('leased')
    if (result.status !== 'leased') return
    expect(result.providerPeerId).toBe(cheap.peerId)
    expect(result.providerAddresses).toEqual(cheap.node.getMultiaddrs().map(String))
    expect(verifyLeaseTerms(result.lease.terms, result.lease.signature, DOMAIN)).toBe(cheap.payment)
    expect(result.lease.terms.pricePerGpuHour).toBe(1_500_000n)
    expect(cheap.proposals.at(-1)?.order.orderId).toBe(order.orderId)
    // a retried order gets the same answer, without a second proposal
    const proposals = cheap.proposals.length
    expect(await submit(order)).toEqual(result)
    expect(cheap.proposals.length).toBe(proposals)
  })

  it('when the best provider rejects, the next one gets the lease', async () => {
    cheap.behaviour = 'NO_CAPACITY'
    try {
      const result = await submit(renter.order({ classes: ['H100'] }))
      expect(result.status).toBe('leased')
      if (result.status === 'leased') expect(result.providerPeerId).toBe(dear.peerId)
      expect(matcher.records.get(cheap.peerId)?.rejected).toBe(1)
      expect(matcher.records.get(dear.peerId)?.accepted).toBe(1)
    } finally {
      cheap.behaviour = 'accept'
    }
  })

  it('answers with the reasons when nothing fits, and the price that would', async () => {
    const result = await submit(renter.order({ gpuCount: 6, classes: ['H100', 'A100'] }, { maxPricePerGpuHour: 2_000_000n }))
    expect(result.status).toBe('no-match')
    if (result.status !== 'no-match') return
    expect(result.explanation).toMatchObject({
      offersConsidered: 3,
      fitting: 0,
      reasons: [{ code: 'TOO_FEW_GPUS', count: 2 }, { code: 'PRICE', count: 1 }],
      cheapestPricePerGpuHour: 2_500_000n,
      declined: []
    })
    expect(result.explanation.message).toBe('3 offers: 2 too few GPUs, 1 above your price; the cheapest fitting would need 2.50/GPU-hour')
  })

  it('says which providers declined when all fitting ones did', async () => {
    cheap.behaviour = 'PRICE_TOO_LOW'
    dear.behaviour = 'silent'
    try {
      const result = await submit(renter.order({ classes: ['H100'] }))
      expect(result.status).toBe('no-match')
      if (result.status !== 'no-match') return
      expect(result.explanation.declined).toEqual([
        { providerPeerId: cheap.peerId, code: 'PRICE_TOO_LOW' },
        { providerPeerId: dear.peerId, code: 'TIMEOUT' }
      ])
      expect(result.explanation.message).toContain('2 offers fit but no provider leased')
      expect(matcher.records.get(dear.peerId)?.timeouts).toBe(1)
    } finally {
      cheap.behaviour = 'accept'
      dear.behaviour = 'accept'
    }
  })
})

describe('offer intake', () => {
  it('keeps the newest offer per provider and drops one that stops publishing after expiry', async () => {
    const p = await provider(addrs(matcher))
    await untilSubscribed(p.node, [matcher.node])
    await p.publish(p.offer([{ pricePerGpuHour: 9_000_000n }], {}, 60_000))
    await vi.waitFor(() => { expect(matcher.book.get(p.peerId) != null).toBeTruthy() }, { timeout: 10_000 })
    const short = p.offer([{ pricePerGpuHour: 8_000_000n }], {}, 800)
    await p.publish(short)
    await vi.waitFor(() => { expect(matcher.book.get(p.peerId)?.sequence).toBe(short.sequence) }, { timeout: 10_000 })
    await vi.waitFor(() => { expect(matcher.book.has(p.peerId)).toBeFalsy() }, { timeout: 5_000 })
    expect(Date.now()).toBeGreaterThanOrEqual(short.expiresAt)
    // Its going away is on its record: one interruption, the time it was watched kept.
    expect(matcher.records.observation(p.peerId, Date.now())).toMatchObject({ peerId: p.peerId, interruptions: 1 })
    expect(matcher.records.observation(p.peerId, Date.now())?.observedSec).toBeLessThan(10)
  })

  it('rejects forged offers at gossip validation: none enters a book', async () => {
    const forger = await provider([...addrs(matcher), ...addrs(second)])
    await untilSubscribed(forger.node, [matcher.node, second.node])
    // What each matcher's gossip judge answered, per peer that passed the message on.
    const reports = [matcher, second].map((m) => recordJudgements(m.node, OFFERS_TOPIC))
    const before = verdicts.length
    const victim = cheap.offer([{ pricePerGpuHour: 1n }])
    // 1. the victim's payment address on the forger's peer, with the victim's binding proof
    const stolen: OfferBody = {
      ...forger.offer([{ pricePerGpuHour: 1n }]),
      binding: { peerId: forger.peerId, payment: cheap.payment, proof: victim.binding.proof }
    }
    // 2. the victim's address bound by the forger's own key
    const selfBound: OfferBody = {
      ...forger.offer([{ pricePerGpuHour: 1n }]),
      binding: { peerId: forger.peerId, payment: cheap.payment, proof: signPeerBinding({ peerId: forger.peerId, payment: cheap.payment }, forger.key, DOMAIN) }
    }
    const forged: Offer[] = [
      { ...stolen, signature: signOffer(stolen, forger.key, DOMAIN) },
      { ...selfBound, signature: signOffer(selfBound, forger.key, DOMAIN) },
      // 3. the victim's genuine offer, replayed by someone else
      victim
    ]
    for (const offer of forged) {
      await forger.publish(offer)
    }
    await vi.waitFor(() => { expect(verdicts.length).toBeGreaterThanOrEqual(before + 3) }, { timeout: 10_000 })
    const mine = verdicts.slice(before).filter((v) => v.author === forger.peerId)
    expect(mine.map((v) => [v.judgement, v.reason])).toEqual([['reject', 'BAD_SIGNATURE'], ['reject', 'BAD_SIGNATURE'], ['reject', 'NOT_AUTHOR']])
    expect(reports[0]?.results(forger.peerId)).toEqual(['reject', 'reject', 'reject'])
    // The second matcher got them straight from the forger too (never relayed by the first): once it judged them, neither book holds one.
    await vi.waitFor(() => { expect(reports[1]?.results(forger.peerId)).toEqual(['reject', 'reject', 'reject']) }, { timeout: 10_000 })
    for (const m of [matcher, second]) {
      expect(m.book.has(forger.peerId)).toBe(false)
      expect(m.book.get(cheap.peerId)?.gpus[0]?.pricePerGpuHour).toBe(1_500_000n)
    }
    for (const r of reports) r.restore()
  })

  it('ignores a peer that publishes faster than the gossip limit, before checking a signature', async () => {
    const chatty = await provider(addrs(matcher))
    await untilSubscribed(chatty.node, [matcher.node])
    const before = verdicts.length
    // Junk, so none of it can enter the book: judged (and rejected) up to the limit, ignored beyond it.
    for (let i = 0; i < OFFER_GOSSIP_RATE_LIMIT.points + 5; i++) await publish(chatty.node, OFFERS_TOPIC, new TextEncoder().encode(`not an offer ${i}`))
    const mine = (): OfferVerdict[] => verdicts.slice(before).filter((v) => v.author === chatty.peerId)
    await vi.waitFor(() => { expect(mine().length).toBeGreaterThanOrEqual(OFFER_GOSSIP_RATE_LIMIT.points + 5) }, { timeout: 10_000 })
    expect(mine().map((v) => v.reason)).toEqual([...Array(OFFER_GOSSIP_RATE_LIMIT.points).fill('MALFORMED'), ...Array(5).fill('RATE_LIMITED')])
    expect(mine().filter((v) => v.reason === 'RATE_LIMITED').every((v) => v.judgement === 'ignore')).toBe(true)
  })
})

describe('book serving', () => {
  it('filters and pages, cheapest first, with the signed offers', async () => {
    const all = await page({}, 0, 50)
    expect(all.offers.map((o) => o.peerId)).toEqual([cheap.peerId, middle.peerId, dear.peerId])
    expect(all.nextOffset).toBeNull()
    for (const o of all.offers) expect(verifyOffer(o, DOMAIN)).toBe([cheap, middle, dear].find((p) => p.peerId === o.peerId)?.payment)
    const first = await page({}, 0, 2)
    expect(first.offers.map((o) => o.peerId)).toEqual([cheap.peerId, middle.peerId])
    expect(first.nextOffset).toBe(2)
    const rest = await page({}, 2, 2)
    expect(rest.offers.map((o) => o.peerId)).toEqual([dear.peerId])
    expect(rest.nextOffset).toBeNull()
    expect((await page({ gpuClass: 'A100' })).offers.map((o) => o.peerId)).toEqual([middle.peerId])
    expect((await page({ region: 'us' })).offers.map((o) => o.peerId)).toEqual([middle.peerId])
    expect((await page({ minGpus: 5 })).offers.map((o) => o.peerId)).toEqual([dear.peerId])
    expect((await page({ maxPricePerGpuHour: 2_000_000n })).offers.map((o) => o.peerId)).toEqual([cheap.peerId, middle.peerId])
    expect((await page({}, 0, 50, second)).offers).toHaveLength(3)
  })

  it('adds its observation of each listed provider only when the query asks', async () => {
    expect((await page()).records).toBeUndefined()
    const bytes = await request(renter.node, matcher.node.getMultiaddrs(), BOOK_PROTOCOL,
      encodeBookQuery({ type: 'book-query', filters: ANY, offset: 0, limit: 2, includeRecords: true }))
    const asked = decodeBookPage(bytes)
    expect(asked.offers.map((o) => o.peerId)).toEqual([cheap.peerId, middle.peerId])
    expect(asked.records?.map((r) => r.peerId)).toEqual([cheap.peerId, middle.peerId])
    for (const r of asked.records ?? []) expect(r.interruptions).toBe(0)
  })
})

describe('bad requests', () => {
  async function remoteCode (protocol: string, bytes: Uint8Array): Promise<string | undefined> {
    try {
      await request(renter.node, matcher.node.getMultiaddrs(), protocol, bytes)
    } catch (err) {
      expect(err).toBeInstanceOf(RequestError)
      return (err as RequestError).remoteCode
    }
    throw new Error('expected a refusal')
  }

  it('answers typed reason codes and keeps serving', async () => {
    const utf8 = new TextEncoder()
    expect(await remoteCode(ORDER_PROTOCOL, utf8.encode('not json'))).toBe('MALFORMED')
    expect(await remoteCode(ORDER_PROTOCOL, utf8.encode('{"type":"order"}'))).toBe('INVALID_FIELD')
    expect(await remoteCode(ORDER_PROTOCOL, new Uint8Array(20_000))).toBe('TOO_LARGE')
    expect(await remoteCode(BOOK_PROTOCOL, new Uint8Array([0xff, 0x00]))).toBe('MALFORMED')
    expect(await remoteCode(BOOK_PROTOCOL, encodeOrder(renter.order()))).toBe('MALFORMED')
    const tampered = { ...renter.order(), maxPricePerGpuHour: 9_000_000n }
    expect(await remoteCode(ORDER_PROTOCOL, encodeOrder(tampered))).toBe('BAD_SIGNATURE')
    const other = new Renter(renter.node)
    const someoneElses = other.order({}, { renterPeerId: cheap.peerId })
    expect(await remoteCode(ORDER_PROTOCOL, encodeOrder(someoneElses))).toBe('NOT_RENTER')
    // still serving
    expect((await page()).offers).toHaveLength(3)
    expect((await submit(renter.order())).status).toBe('leased')
  })
})
