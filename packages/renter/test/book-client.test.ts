import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HandlerError, createNode, handle, type GpumeshNode } from '@gpumesh/net'
import {
  BOOK_PROTOCOL, encodeBookPage, marketDomain, paymentKeyAddress, signOffer, signPeerBinding,
  type Address, type BookFilters, type Offer
} from '@gpumesh/protocol'
import { readBook, type BookReadError } from '@gpumesh/renter'
import { offerBody, rejection } from './helpers.js'

// Reading a book from stand-in matchers on real libp2p nodes: signatures checked, records kept only for
// verified offers, an older matcher that refuses `includeRecords` read again without them, and every
// failure a typed BookReadError.

const ANY: BookFilters = { gpuClass: null, minGpus: null, minMemoryMiB: null, maxPricePerGpuHour: null, region: null, operator: null, includeSimulated: true }
const DOMAIN = marketDomain(31337n)

function signedOffer (peerId: string, key: string, price: bigint): Offer {
  const payment = paymentKeyAddress(key)
  const now = Date.now()
  const body = offerBody(peerId, {
    binding: { peerId, payment, proof: signPeerBinding({ peerId, payment }, key, DOMAIN) },
    gpus: [{ class: 'H100-SXM-80GB', vendor: 'nvidia', memoryMiB: 81_559, computeCapability: '9.0', countFree: 2, countTotal: 2, pricePerGpuHour: price, simulated: false }],
    token: '0x0000000000000000000000000000000000000000' as Address,
    chainId: 31337n,
    issuedAt: now,
    expiresAt: now + 600_000
  })
  return { ...body, signature: signOffer(body, key, DOMAIN) }
}

describe('readBook', () => {
  let renter: GpumeshNode
  let current: GpumeshNode
  let older: GpumeshNode
  let junk: GpumeshNode
  let good: Offer
  let forged: Offer
  const asked: boolean[] = []

  beforeAll(async () => {
    const start = async (): Promise<GpumeshNode> => await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })
    ;[renter, current, older, junk] = await Promise.all([start(), start(), start(), start()])
    const other = await createNode({ listen: [], loopback: true })
    good = signedOffer(current.peerId.toString(), Wallet.createRandom().privateKey, 1_000_000n)
    // A real signature over a different price: the matcher cannot serve what the provider did not sign.
    forged = { ...signedOffer(other.peerId.toString(), Wallet.createRandom().privateKey, 2_000_000n), gpus: [{ ...good.gpus[0] as Offer['gpus'][number], pricePerGpuHour: 1n }] }
    await other.stop()
    const page = (withRecords: boolean): Uint8Array => encodeBookPage({
      type: 'book-page', offers: [good, forged], nextOffset: null, bookSize: 2,
      ...(withRecords ? { records: [{ peerId: good.peerId, observedSec: 3600, interruptions: 1 }, { peerId: forged.peerId, observedSec: 60, interruptions: 0 }] } : {})
    })
    await handle(current, BOOK_PROTOCOL, async (bytes) => page((JSON.parse(new TextDecoder().decode(bytes)) as { includeRecords?: boolean }).includeRecords === true))
    await handle(older, BOOK_PROTOCOL, async (bytes) => {
      const wanted = (JSON.parse(new TextDecoder().decode(bytes)) as { includeRecords?: boolean }).includeRecords === true
      asked.push(wanted)
      if (wanted) throw new HandlerError('INVALID_FIELD', 'includeRecords: unrecognized key')
      return page(false)
    })
    await handle(junk, BOOK_PROTOCOL, async () => new TextEncoder().encode('{"type":"book-page","offers":"none"}'))
  })
  afterAll(async () => {
    await Promise.all([renter, current, older, junk].map(async (n) => await n?.stop()))
  })

  const addr = (n: GpumeshNode): string[] => n.getMultiaddrs().map(String)
  const fails = async (p: Promise<unknown>): Promise<BookReadError> => await rejection(p, 'BookReadError')

  it('keeps verified offers, counts forged ones, and keeps records only of verified providers', async () => {
    const read = await readBook({ node: renter, matcher: addr(current), filters: ANY, includeRecords: true })
    expect(read.offers.map((o) => o.peerId)).toEqual([good.peerId])
    expect(read.invalid).toBe(1)
    expect([...read.records.values()]).toEqual([{ peerId: good.peerId, observedSec: 3600, interruptions: 1 }])
    expect(read.recordsServed).toBe(true)
    expect((await readBook({ node: renter, matcher: addr(current), filters: ANY })).records.size).toBe(0)
  })

  it('reads an older matcher again without records when it refuses the field', async () => {
    const read = await readBook({ node: renter, matcher: addr(older), filters: ANY, includeRecords: true })
    expect(asked).toEqual([true, false])
    expect(read.offers.map((o) => o.peerId)).toEqual([good.peerId])
    expect(read.recordsServed).toBe(false)
    expect(read.records.size).toBe(0)
  })

  it('says what went wrong: a bad address, an unreachable matcher, a page that is not valid', async () => {
    expect((await fails(readBook({ node: renter, matcher: ['not an address'], filters: ANY }))).code).toBe('BAD_ADDRESS')
    expect((await fails(readBook({ node: renter, matcher: [], filters: ANY }))).code).toBe('BAD_ADDRESS')
    const stopped = await createNode({ listen: [], loopback: true })
    await stopped.stop()
    const gone = `/ip4/127.0.0.1/tcp/1/p2p/${stopped.peerId.toString()}`
    const unreachable = await fails(readBook({ node: renter, matcher: [gone], filters: ANY }))
    expect(unreachable.code).toBe('MATCHER_UNREACHABLE')
    expect(unreachable.message).toMatch(/^Could not read the book of \/ip4\/127\.0\.0\.1\/tcp\/1\//)
    const bad = await fails(readBook({ node: renter, matcher: addr(junk), filters: ANY }))
    expect(bad.code).toBe('BAD_PAGE')
  })
})
