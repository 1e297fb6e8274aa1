/**
 * `gpumesh quote` and `gpumesh lease submit --dry-run` end to end: a real matcher on 127.0.0.1 and three
 * providers with simulated GPUs at known prices (H100 at 1.00 and 2.50, A100 at 0.75), the built CLI run
 * as a child process, every amount checked to the base unit against arithmetic written out here. One
 * provider goes away once (its offer expires in the book) and comes back, so the matcher's record of
 * interruptions reaches the quote's lost-work line. The matcher's clock is moved forward instead of
 * waiting for the expiry. Runs the built CLI (`npx tsc -b` first).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { generatePeerKey } from '@gpumesh/net'
import { createMatcher, type Matcher } from '@gpumesh/matcher'
import { CLASS, StandInProber, simulatedGpu, startProvider, type TestProvider } from './provider-helpers.js'
import { runCli } from './cli-helpers.js'

const A100 = 'A100-SXM4-80GB'
const MS_PER_HOUR = 3_600_000n
/** floor(price × GPU-ms / 3,600,000): the billing rule, written out. */
const bill = (price: bigint, gpuMs: bigint): bigint => price * gpuMs / MS_PER_HOUR

/** 8 H100 GPU-hours at MFU 0.5 (989 dense TFLOPS): 8 × 989e12 × 0.5 × 3600, exact in binary floating point. */
const FLOPS = '1.42416e19'

interface QuoteRow {
  class: string
  gpuHours: number
  gpuMilliseconds: string
  gpus: number | null
  gpusAvailable: number | null
  enoughGpus: boolean
  wallClockHours: number | null
  costLow: string | null
  costLowTokens: string | null
  costMedian: string | null
  costGpus: string | null
  fits: boolean | null
  lostWork: null | { basis: string, interruptionsPerDay: number, expectedInterruptions: number, lostWallMs: string, cost: string, costTokens: string, providersWithoutRecord: number }
  priceSource: string | null
}
interface QuoteJson { flops: number, market: string, classes: QuoteRow[], warnings: string[], notes: string[] }

describe('gpumesh quote against a live matcher', () => {
  let matcher: Matcher
  let addr: string
  let skew = 0
  let root: string
  const providers: TestProvider[] = []
  const env = { ...process.env, GPUMESH_HOME: '' }
  let cheapKeys: { peerKey: Awaited<ReturnType<typeof generatePeerKey>>, paymentKey: string }
  let cheapDir: string

  const config = (price: string, ttlSec: number, gpuClass = CLASS): Record<string, unknown> => ({
    logLevel: 'warn',
    pricing: { perGpuHour: { [gpuClass]: price } },
    network: { bootstrap: [addr], mdns: false },
    offers: { ttlSec, republishSec: Math.min(30, ttlSec - 1) }
  })
  const startCheap = async (ttlSec: number): Promise<TestProvider> =>
    await startProvider({ gpus: 4, dataDir: cheapDir, ...cheapKeys, config: config('1.00', ttlSec) })

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'gpumesh-quote-'))
    matcher = createMatcher({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, pruneIntervalMs: 100 }, {
      clock: { now: () => Date.now() + skew, monotonicNow: () => performance.now() }
    })
    await matcher.start()
    addr = matcher.node.getMultiaddrs().map(String)[0] ?? ''
    cheapKeys = { peerKey: await generatePeerKey(), paymentKey: Wallet.createRandom().privateKey }
    cheapDir = join(root, 'cheap')
    await mkdir(cheapDir)
    const a100 = new StandInProber(0)
    a100.gpus = [0, 1].map((n) => simulatedGpu(n, { uuid: `GPU-sim-a100-${n}`, name: 'NVIDIA A100-SXM4-80GB', class: A100, memoryTotalMiB: 81_920, computeCapability: '8.0' }))
    const [cheap, dear, ampere] = await Promise.all([
      startCheap(60),
      startProvider({ gpus: 5, config: config('2.50', 3600) }),
      startProvider({ prober: a100, config: config('0.75', 3600, A100) })
    ])
    providers.push(cheap as TestProvider, dear as TestProvider, ampere as TestProvider)
    await vi.waitFor(() => { expect(matcher.book.size).toBe(3) }, { timeout: 30_000 })

    // The cheap provider goes away: its daemon stops, and once its 60 s offer has expired in the matcher's
    // book (the clock moved 2 minutes on) the prune counts one interruption. Then it comes back.
    const cheapPeer = cheap?.provider.node?.peerId.toString() ?? ''
    await cheap?.stop()
    skew = 120_000
    matcher.prune()
    expect(matcher.book.has(cheapPeer)).toBe(false)
    expect(matcher.records.observation(cheapPeer, Date.now() + skew)?.interruptions).toBe(1)
    providers[0] = await startCheap(3600)
    await vi.waitFor(() => { expect(matcher.book.has(cheapPeer)).toBeTruthy() }, { timeout: 30_000 })
  }, 120_000)

  afterAll(async () => {
    for (const p of providers) await p.stop().catch(() => {})
    await matcher?.stop()
    if (root != null) await rm(root, { recursive: true, force: true })
  })

  const quote = async (...args: string[]): Promise<QuoteJson> => {
    const run = await runCli(['quote', '--matcher', addr, '--include-simulated', '--json', ...args], { env })
    expect(run.code, run.stderr).toBe(0)
    return JSON.parse(run.stdout) as QuoteJson
  }

  it('prices each class from the book: cheapest, median, and the cheapest GPUs together, to the base unit', async () => {
    const q = await quote('--flops', FLOPS, '--mfu', '0.5', '--gpus', '6')
    expect(q.flops).toBe(1.42416e19)
    expect(q.market).toBe('live')
    const h100 = q.classes.find((r) => r.class === CLASS)
    expect(h100).toMatchObject({ gpuHours: 8, gpuMilliseconds: '28800000', gpus: 6, gpusAvailable: 9, enoughGpus: true })
    // All 8 GPU-hours at the cheapest price, 1.00; at the lower median of 4 × 1.00 and 5 × 2.50, 2.50.
    expect(h100?.costLow).toBe(bill(1_000_000n, 28_800_000n).toString())
    expect(h100?.costLow).toBe('8000000')
    expect(h100?.costLowTokens).toBe('8.000000')
    expect(h100?.costMedian).toBe('20000000')
    // Six GPUs: the cheap provider's 4 and 2 of the dear one's, each for ceil(28.8e6 / 6) ms, billed per provider.
    const wall = 4_800_000n
    expect(h100?.wallClockHours).toBe(4 / 3)
    expect(h100?.costGpus).toBe((bill(1_000_000n, 4n * wall) + bill(2_500_000n, 2n * wall)).toString())
    expect(h100?.costGpus).toBe('11999999')
    // The A100 class: the same FLOPs at 312 TFLOPS; only 2 GPUs offered, so 6 are not.
    const a100 = q.classes.find((r) => r.class === A100)
    const a100Ms = BigInt(Math.ceil(1.42416e19 / (312e12 * 0.5) / 3600 * 3_600_000))
    expect(a100).toMatchObject({ gpuMilliseconds: a100Ms.toString(), gpus: 6, gpusAvailable: 2, enoughGpus: false, costGpus: null })
    expect(a100?.costLow).toBe(bill(750_000n, a100Ms).toString())
    expect(q.warnings.join(' ')).toMatch(/6 GPUs of A100-SXM4-80GB were asked for, but only 2 are offered now/)
    // Sorted by cost: the H100 run on 6 GPUs (11.999999) before the A100 row that has no such cost but costs more at its cheapest.
    expect(q.classes.map((r) => r.class)).toEqual([CLASS, A100])
  })

  it('prices the work lost to interruptions from the matcher\'s record of each provider', async () => {
    const q = await quote('--flops', FLOPS, '--mfu', '0.5', '--gpus', '6', '--checkpoint-minutes', '60', '--classes', CLASS)
    const lost = q.classes[0]?.lostWork
    // Only the cheap provider went away (once, watched for a little over 2 minutes); the dear one has a clean record.
    expect(lost).toMatchObject({ basis: 'observed', providersWithoutRecord: 0 })
    expect(lost?.interruptionsPerDay).toBeGreaterThan(86_400 / 300)
    expect(lost?.interruptionsPerDay).toBeLessThanOrEqual(86_400 / 120)
    const expected = (lost?.interruptionsPerDay ?? 0) / 24 * (4 / 3)
    expect(lost?.expectedInterruptions).toBeCloseTo(expected, 9)
    const lostWallMs = BigInt(Math.ceil(expected * 60 * 60_000 / 2))
    expect(lost?.lostWallMs).toBe(lostWallMs.toString())
    expect(lost?.cost).toBe((bill(1_000_000n, 4n * lostWallMs) + bill(2_500_000n, 2n * lostWallMs)).toString())
  })

  it('sizes the run for a deadline, and checks the training state against each class\'s memory', async () => {
    // 8 GPU-hours within 2 h: 4 GPUs, all from the cheap provider; 1B parameters = 16 GB of state, 4 GB per GPU.
    const q = await quote('--flops', FLOPS, '--mfu', '0.5', '--deadline', '2', '--params', '1B', '--classes', CLASS)
    expect(q.classes[0]).toMatchObject({ gpus: 4, wallClockHours: 2, costGpus: bill(1_000_000n, 4n * 7_200_000n).toString(), fits: true })
    const tooBig = await quote('--flops', FLOPS, '--mfu', '0.5', '--gpus', '2', '--params', '100B', '--classes', CLASS)
    expect(tooBig.classes[0]?.fits).toBe(false)
    expect(tooBig.warnings.join(' ')).toMatch(/fits none of the offered classes/)
  })

  it('quotes offline from the dated reference prices and says so', async () => {
    const run = await runCli(['quote', '--params', '7B', '--chinchilla', '--offline', '--json'], { env })
    expect(run.code, run.stderr).toBe(0)
    const q = JSON.parse(run.stdout) as QuoteJson
    expect(q.flops).toBe(6 * 7e9 * 1.4e11)
    expect(q.market).toBe('offline')
    expect(q.notes.join(' ')).toMatch(/Offline: prices are reference list prices/)
    const h100 = q.classes.find((r) => r.class === CLASS)
    const ms = BigInt(Math.ceil(6 * 7e9 * 1.4e11 / (989e12 * 0.4) / 3600 * 3_600_000))
    expect(h100?.costLow).toBe(bill(3_780_000n, ms).toString())
    expect(h100?.priceSource).toMatch(/^Lambda, .*https:\/\//)
    const text = await runCli(['quote', '--params', '7B', '--chinchilla', '--offline'], { env })
    expect(text.stdout).toMatch(/reference list prices/)
    const bad = await runCli(['quote', '--params', '7X', '--tokens', '1T', '--offline'], { env })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--params: "7X" is not a count/)
  })

  it('lease submit --dry-run shows what the order would match and the most it would cost, ordering nothing', async () => {
    const job = join(root, 'job.yaml')
    await writeFile(job, [
      `gpus: { count: 2, classes: [${CLASS}] }`,
      'maxPricePerGpuHour: "2.00"',
      'durationSec: 600',
      'command: "true"',
      'allowSimulated: true',
      ''
    ].join('\n'))
    const run = await runCli(['lease', 'submit', job, '--dry-run', '--json', '--matcher', addr, '--data-dir', join(root, 'renter')], { env })
    expect(run.code, run.stderr).toBe(0)
    const preview = JSON.parse(run.stdout) as { dryRun: boolean, candidates: Array<{ gpuClass: string, pricePerGpuHour: string }>, mismatches: Record<string, number>, mostAtMatch: string, mostAtCap: string, budget: string }
    expect(preview.dryRun).toBe(true)
    // Only the cheap provider is under the 2.00 cap; the dear one is above it, the A100 one another class.
    expect(preview.candidates).toEqual([expect.objectContaining({ gpuClass: CLASS, pricePerGpuHour: '1000000' })])
    expect(preview.mismatches).toEqual({ PRICE: 1, CLASS: 1 })
    expect(preview.mostAtMatch).toBe(bill(1_000_000n, 2n * 600_000n).toString()) // 333333
    expect(preview.mostAtCap).toBe(bill(2_000_000n, 2n * 600_000n).toString())
    expect(preview.budget).toBe('666666')
    const text = await runCli(['lease', 'submit', job, '--dry-run', '--matcher', addr, '--data-dir', join(root, 'renter')], { env })
    expect(text.stdout).toMatch(/Dry run: nothing was signed, ordered or paid/)
    expect(text.stdout).toMatch(/Most it would cost at 1.00\/GPU-hour: 0.333333/)
  })
})
