// Matching throughput against a 100,000-offer book: the price index (findCandidates) beside a plain
// scan of the same book with the same orders in the same run (findCandidatesLinear).
// The book and the orders are generated from a fixed seed, so every run measures the same work.
import { OrderBook, ProviderRecords, findCandidates, findCandidatesLinear } from '@gpumesh/matcher'

const OFFERS = 100_000
const ORDERS = 64
const LIMIT = 5
const NOW = 1_700_000_000_000
const SECONDS_PER_METHOD = 1.5
const TOKEN = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913'
const UNIT = 1_000_000n // 6-decimal token

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
    match_linear_scan_per_s: { value: round(linear), unit: 'orders/s', offers: OFFERS, orders: orders.length, matched, limit: LIMIT }
  }
}
