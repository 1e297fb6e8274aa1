// Matching throughput against a 100,000-offer book: the price index (findCandidates) beside a plain
// scan of the same book with the same orders in the same run (findCandidatesLinear).
// The book and the orders are generated from a fixed seed, so every run measures the same work.
// Then the service on loopback: a renter's order through a matcher to an in-process provider that
// answers with signed terms (order_to_lease_p50_ms), beside the floor of two plain request/response
// hops measured in the same run, renter→matcher plus matcher→provider, each on a new stream (an order
// and the two hops in turn, so both see the same load).
import { createMatcher, OrderBook, ProviderRecords, findCandidates, findCandidatesLinear } from '@gpumesh/matcher'
import { createNode, handle, publish, request } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, OFFERS_TOPIC, ORDER_PROTOCOL, decodeLeaseProposal, decodeOrderResult, encodeLeaseDecision, encodeOffer,
  encodeOrder, marketDomain, paymentKeyAddress, signLeaseTerms, signOffer, signOrder, signPeerBinding
} from '@gpumesh/protocol'
import { median } from './lib/median.mjs'

const OFFERS = 100_000
const ORDERS = 64
const LIMIT = 5
const NOW = 1_700_000_000_000
const SECONDS_PER_METHOD = 1.5
const TOKEN = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913'
const UNIT = 1_000_000n // 6-decimal token
const OFF_CHAIN = '0x0000000000000000000000000000000000000000' // the escrow field of off-chain settlement

/** mulberry32: small, fast, deterministic. */
function rng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// class, price in cents per GPU-hour, memory MiB, compute capability
const CLASSES = [
  ['H200-SXM-141GB', 350, 144_384, '9.0'],
  ['H100-SXM-80GB', 250, 81_920, '9.0'],
  ['H100-PCIe-80GB', 210, 81_920, '9.0'],
  ['MI300X-192GB', 220, 196_608, null],
  ['A100-SXM-80GB', 150, 81_920, '8.0'],
  ['A100-PCIe-40GB', 120, 40_960, '8.0'],
  ['L40S-48GB', 100, 46_068, '8.9'],
  ['A10G-24GB', 60, 23_028, '8.6'],
  ['L4-24GB', 45, 23_034, '8.9'],
  ['RTX-4090-24GB', 40, 24_564, '8.9'],
  ['V100-SXM2-32GB', 30, 32_768, '7.0'],
  ['RTX-3090-24GB', 25, 24_576, '8.6']
]
const REGIONS = ['us-east', 'us-west', 'eu-west', 'eu-central', 'ap-south', 'ap-northeast', 'sa-east', null]
const OPERATORS = Array.from({ length: 10 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, '0')}`)

function pick (random, list) {
  return list[Math.floor(random() * list.length)]
}

function makeBook () {
  const random = rng(20_240_601)
  const book = new OrderBook()
  for (let i = 0; i < OFFERS; i++) {
    const kinds = random() < 0.8 ? 1 : 2
    const gpus = []
    for (let k = 0; k < kinds; k++) {
      const [cls, cents, memoryMiB, computeCapability] = pick(random, CLASSES)
      const factor = 0.7 + random() * 0.9
      const total = random() < 0.4 ? 1 : pick(random, [2, 4, 8, 8])
      gpus.push({
        class: cls,
        vendor: computeCapability == null ? 'amd' : 'nvidia',
        memoryMiB,
        computeCapability,
        countFree: Math.floor(random() * (total + 1)),
        countTotal: total,
        pricePerGpuHour: BigInt(Math.round(cents * factor)) * (UNIT / 100n),
        simulated: random() < 0.01
      })
    }
    book.upsert({
      peerId: `12D3KooW${i.toString(36).padStart(8, '0')}`,
      fleet: random() < 0.3 ? { operator: pick(random, OPERATORS) } : null,
      gpus,
      token: TOKEN,
      chainId: 8453n,
      escrow: OFF_CHAIN,
      region: pick(random, REGIONS),
      minLeaseSec: pick(random, [60, 600, 3600]),
      maxLeaseSec: pick(random, [86_400, 604_800]),
      sequence: 1,
      expiresAt: NOW + 600_000 + Math.floor(random() * 3_000_000)
    }, NOW)
  }
  return book
}

function makeOrders () {
  const random = rng(7)
  const orders = []
  for (let i = 0; i < ORDERS; i++) {
    const shape = random()
    const first = pick(random, CLASSES)
    let classes
    if (shape < 0.55) classes = [first[0]]
    else if (shape < 0.75) classes = [first[0], pick(random, CLASSES)[0]]
    else if (shape < 0.85) classes = [first[0], pick(random, CLASSES)[0], pick(random, CLASSES)[0]]
    else classes = []
    const cents = classes.length === 0 ? 100 : first[1]
    orders.push({
      requirements: {
        gpuCount: pick(random, [1, 1, 1, 2, 2, 4, 8]),
        classes,
        minMemoryMiB: random() < 0.2 ? 24_000 : 0,
        minComputeCapability: random() < 0.15 ? '8.0' : null,
        region: random() < 0.25 ? pick(random, REGIONS.slice(0, -1)) : null,
        operators: random() < 0.05 ? [pick(random, OPERATORS)] : [],
        allowSimulated: false
      },
      maxPricePerGpuHour: BigInt(Math.round(cents * (0.9 + random() * 0.4))) * (UNIT / 100n),
      durationSec: pick(random, [3600, 4 * 3600, 86_400]),
      token: TOKEN.toLowerCase(),
      chainId: 8453n
    })
  }
  return orders
}

function makeRecords () {
  const random = rng(99)
  const records = new ProviderRecords()
  for (let i = 0; i < 5000; i++) {
    const peerId = `12D3KooW${Math.floor(random() * OFFERS).toString(36).padStart(8, '0')}`
    if (random() < 0.8) records.recordCompleted(peerId)
    else records.recordTimeout(peerId)
  }
  return records
}

/** Orders per second over at least SECONDS_PER_METHOD, whole passes over the order set. */
function measure (fn, book, orders, options) {
  for (const order of orders) fn(book, order, options) // warm-up
  let done = 0
  const start = process.hrtime.bigint()
  let elapsed = 0
  while (elapsed < SECONDS_PER_METHOD) {
    for (const order of orders) fn(book, order, options)
    done += orders.length
    elapsed = Number(process.hrtime.bigint() - start) / 1e9
  }
  return done / elapsed
}

const SERVICE_SAMPLES = 200
const SERVICE_WARMUP = 20
const ECHO = '/gpumesh/bench-echo/1.0.0'
const PROVIDER_KEY = '0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'
const RENTER_KEY = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'
const CHAIN_ID = 31337n
const LOCAL = { listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true }
const UNLIMITED = { points: 1_000_000, durationMs: 1_000 }

async function until (check, timeoutMs = 20_000) {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('bench setup: condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function hex32 (i) {
  return `0x${i.toString(16).padStart(64, '0')}`
}

async function service () {
  const domain = marketDomain(CHAIN_ID)
  const payment = paymentKeyAddress(PROVIDER_KEY)
  const renterAddress = paymentKeyAddress(RENTER_KEY)
  const matcher = createMatcher({ ...LOCAL, orderRateLimit: UNLIMITED, maxRememberedOrders: 1_000_000 })
  await matcher.start()
  const [provider, renter] = await Promise.all([
    createNode({ ...LOCAL, bootstrap: matcher.node.getMultiaddrs().map(String) }),
    createNode(LOCAL)
  ])
  try {
    const providerPeer = provider.peerId.toString()
    let leases = 0
    await handle(provider, LEASE_PROTOCOL, async (bytes) => {
      const { order, pricePerGpuHour, gpuClass } = decodeLeaseProposal(bytes)
      const now = Date.now()
      const terms = {
        leaseId: hex32(++leases), orderId: order.orderId, provider: payment, providerPeerId: providerPeer,
        renter: order.renter, renterPeerId: order.renterPeerId, token: order.token, chainId: order.chainId,
        pricePerGpuHour, gpus: ['GPU-0'], gpuClass, durationSec: order.durationSec, billingIntervalSec: 300,
        paymentGraceSec: 60, startDeadline: now + 120_000, jobHash: order.jobHash, providerAddresses: [], acceptedAt: now,
        escrow: OFF_CHAIN
      }
      return encodeLeaseDecision({ type: 'lease-decision', accepted: true, terms, signature: signLeaseTerms(terms, PROVIDER_KEY, domain) })
    }, { rateLimit: UNLIMITED })
    const echo = async (req) => req
    await handle(provider, ECHO, echo, { rateLimit: UNLIMITED })
    await handle(matcher.node, ECHO, echo, { rateLimit: UNLIMITED })

    await until(() => provider.services.pubsub.getSubscribers(OFFERS_TOPIC).some((p) => p.equals(matcher.node.peerId)))
    const now = Date.now()
    const body = {
      type: 'offer', peerId: providerPeer,
      binding: { peerId: providerPeer, payment, proof: signPeerBinding({ peerId: providerPeer, payment }, PROVIDER_KEY, domain) },
      fleet: null, addresses: provider.getMultiaddrs().map(String),
      gpus: [{ class: 'H100-SXM-80GB', vendor: 'nvidia', memoryMiB: 81_559, computeCapability: '9.0', countFree: 8, countTotal: 8, pricePerGpuHour: 2_000_000n, simulated: false }],
      host: { cpuModel: null, cpuCores: null, memoryMiB: null, diskFreeMiB: null, os: null },
      token: TOKEN, chainId: CHAIN_ID, escrow: OFF_CHAIN, region: null, minLeaseSec: 60, maxLeaseSec: 86_400, billingIntervalSec: 300,
      paymentGraceSec: 60, sequence: 1, issuedAt: now, expiresAt: now + 3_600_000
    }
    await publish(provider, OFFERS_TOPIC, encodeOffer({ ...body, signature: signOffer(body, PROVIDER_KEY, domain) }))
    await until(() => matcher.book.size === 1)
    await renter.dial(matcher.node.getMultiaddrs())

    // Orders are signed before the clock starts: signing is the renter's cost, not the path's.
    const orders = Array.from({ length: SERVICE_WARMUP + SERVICE_SAMPLES }, (_, i) => {
      const order = {
        type: 'order', orderId: hex32(i + 1), renter: renterAddress, renterPeerId: renter.peerId.toString(),
        requirements: { gpuCount: 1, classes: [], minMemoryMiB: 0, minComputeCapability: null, region: null, operators: [], escrow: null, allowSimulated: false },
        maxPricePerGpuHour: 3_000_000n, durationSec: 3600, token: TOKEN, chainId: CHAIN_ID, jobHash: hex32(7), expiresAt: now + 3_600_000
      }
      return encodeOrder({ ...order, signature: signOrder(order, RENTER_KEY, domain) })
    })
    // One order, then the two plain hops, in turn: both see the same load on a shared machine.
    const payload = new Uint8Array(64).fill(7)
    const orderToLease = []
    const twoHops = []
    for (let i = 0; i < orders.length; i++) {
      const start = performance.now()
      const result = decodeOrderResult(await request(renter, matcher.node.peerId, ORDER_PROTOCOL, orders[i]))
      const elapsed = performance.now() - start
      if (result.status !== 'leased') throw new Error(`bench order ${i} was not leased: ${JSON.stringify(result.explanation?.message)}`)
      if (i >= SERVICE_WARMUP) orderToLease.push(elapsed)
      const a = performance.now()
      await request(renter, matcher.node.peerId, ECHO, payload)
      const b = performance.now()
      await request(matcher.node, provider.peerId, ECHO, payload)
      const c = performance.now()
      if (i >= SERVICE_WARMUP) twoHops.push((b - a) + (c - b))
    }
    const ms = (values) => Number(median(values).toFixed(3))
    return {
      order_to_lease_p50_ms: { value: ms(orderToLease), unit: 'ms', samples: orderToLease.length },
      order_to_lease_reqres_2hops_p50_ms: { value: ms(twoHops), unit: 'ms', samples: twoHops.length }
    }
  } finally {
    await Promise.all([provider.stop(), renter.stop()])
    await matcher.stop()
  }
}

export async function run () {
  const book = makeBook()
  const orders = makeOrders()
  const records = makeRecords()
  const latency = new Map()
  const random = rng(3)
  for (let i = 0; i < OFFERS; i += 3) latency.set(`12D3KooW${i.toString(36).padStart(8, '0')}`, Math.floor(random() * 300))
  const options = { now: NOW, records, latency: (peerId) => latency.get(peerId), limit: LIMIT }

  // Both must give the same answer, or the comparison means nothing.
  let matched = 0
  for (const order of orders) {
    const fast = findCandidates(book, order, options)
    const slow = findCandidatesLinear(book, order, options)
    const key = (list) => list.map((c) => `${c.peerId}/${c.gpuClass}/${c.pricePerGpuHour}`).join(',')
    if (key(fast) !== key(slow)) throw new Error(`index and linear scan disagree on order ${orders.indexOf(order)}`)
    if (fast.length > 0) matched++
  }

  const indexed = measure(findCandidates, book, orders, options)
  const linear = measure(findCandidatesLinear, book, orders, options)
  const round = (x) => Math.round(x * 10) / 10
  return {
    match_orders_per_s: { value: round(indexed), unit: 'orders/s', offers: OFFERS, orders: orders.length, matched, limit: LIMIT },
    match_linear_scan_per_s: { value: round(linear), unit: 'orders/s', offers: OFFERS, orders: orders.length, matched, limit: LIMIT },
    ...await service()
  }
}
