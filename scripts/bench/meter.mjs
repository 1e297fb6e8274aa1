// @gpumesh/provider jobs figures: CPU cost of metering 1,000 running leases (one simulated GPU each) in
// one process, all started together. CPU% is process.cpuUsage() (user + system) over wall time; 100%
// is one core.
//   meter_1000_leases_cpu_percent          1 s billing interval, 1 s sampling, 10.5 s: every second
//                                          each lease writes a sample and closes, signs and durably
//                                          appends a usage period. Beside it the floor it cannot beat:
//                                          signing 1,000 usage reports a second, one burst a second
//                                          like the meters', the median second of runs in the same
//                                          process just before and just after (floor_percent,
//                                          sign_per_s, the range of the seconds' CPU ms), and per
//                                          period: CPU per period closed beside one signature. The
//                                          periods closing in one turn are one fsync'd transaction
//                                          (queueUsagePeriod); periods_closed says whether the meters
//                                          kept up.
//   meter_1000_leases_default_cpu_percent  the provider's default billing interval (60 s) and the
//                                          meter's default sampling (every 5 s), over one whole
//                                          billing interval: every lease's sample of a tick goes into
//                                          one transaction (queueUsageSamples); at the end each lease
//                                          closes one period, and those that close in one turn share
//                                          one commit (queueUsagePeriod).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openLedger } from '@gpumesh/ledger'
import { LeaseMeter, parseProviderConfig, simulatedGpuSampler } from '@gpumesh/provider'
import { marketDomain, paymentKeyAddress, signUsageReport, systemClock } from '@gpumesh/protocol'
import { median } from './lib/median.mjs'

const LEASES = 1000
// Half an interval past the tenth boundary, so every lease closes ten periods however long starting 1,000 meters took.
const FAST_RUN_MS = 10_500
const FLOOR_SECONDS = 8
const KEY = '0x' + '11'.repeat(32)
const hex = (s) => `0x${Buffer.from(s).toString('hex').padStart(64, '0').slice(-64)}`

/**
 * The floor: signing 1,000 usage reports like the meter's once a second, in one burst each second as
 * 1,000 meters closing together do, for `seconds` seconds. Returns each burst's CPU milliseconds.
 * This machine's signing speed swings from second to second, so the floor is the median burst of
 * runs taken both just before and just after the metering run.
 */
async function signingBursts (seconds) {
  const provider = paymentKeyAddress(KEY)
  const domain = marketDomain(31337n)
  const report = (i) => ({
    leaseId: hex(`bench-meter-${i % LEASES}`), provider, renter: '0x1111111111111111111111111111111111111111',
    token: '0x3333333333333333333333333333333333333333', periodIndex: i, startOffsetMs: i * 1000, endOffsetMs: (i + 1) * 1000,
    gpuMilliseconds: 1000n, amount: 694n, cumulativeAmount: 694n * BigInt(i + 1), avgUtilizationBp: 9000,
    peakMemoryMiB: 40_000, energyMilliJoules: 300_000n, final: false
  })
  let n = 0
  for (let i = 0; i < 500; i++) signUsageReport(report(n++), KEY, domain) // warm up
  const bursts = []
  const t0 = performance.now()
  for (let second = 1; second <= seconds; second++) {
    const cpu0 = process.cpuUsage()
    for (let i = 0; i < LEASES; i++) signUsageReport(report(n++), KEY, domain)
    const cpu = process.cpuUsage(cpu0)
    bursts.push((cpu.user + cpu.system) / 1000)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, t0 + second * 1000 - performance.now())))
  }
  return bursts
}

/** Meters LEASES leases for `runMs`; returns CPU% and what was done. */
async function meterLeases ({ billingIntervalSec, sampleIntervalMs, runMs }) {
  const dir = mkdtempSync(join(tmpdir(), 'gpumesh-bench-meter-'))
  const ledger = openLedger(join(dir, 'ledger.db'))
  try {
    ledger.upsertGpus(Array.from({ length: LEASES }, (_, i) => ({
      uuid: `GPU-sim-${i}`, index: i, vendor: 'simulated', name: 'Sim', class: 'SIM', memoryMiB: 80_000, simulated: true, state: 'free', problems: []
    })))
    const provider = paymentKeyAddress(KEY)
    const leases = []
    for (let i = 0; i < LEASES; i++) {
      const leaseId = hex(`bench-meter-${i}`)
      ledger.reserveLease({
        leaseId, orderId: hex(`bench-order-${i}`), orderExpiresAt: Date.now() + 3_600_000,
        renter: '0x1111111111111111111111111111111111111111', renterPeerId: 'r', matcherPeerId: null, provider,
        token: '0x3333333333333333333333333333333333333333', chainId: 31337n, pricePerGpuHour: 2_500_000n,
        gpuClass: 'SIM', gpuCount: 1, durationSec: 3600, billingIntervalSec, paymentGraceSec: 3600,
        startDeadline: Date.now() + 60_000, jobHash: hex('job'), eligibleGpuUuids: [`GPU-sim-${i}`]
      })
      leases.push(ledger.transitionLease(leaseId, 'running', 'bench'))
    }
    const sampler = simulatedGpuSampler()
    let reports = 0
    const meters = leases.map((lease) => new LeaseMeter({ ledger, clock: systemClock, sampleGpus: sampler }, lease, {
      paymentKey: KEY,
      ...(sampleIntervalMs === undefined ? {} : { sampleIntervalMs }),
      onReport: () => { reports++ },
      onUnpaid: () => {}
    }))
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (const m of meters) m.start()
    await new Promise((resolve) => setTimeout(resolve, runMs))
    for (const m of meters) m.stop()
    const wall = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const cpuMs = (cpu.user + cpu.system) / 1000
    return {
      percent: cpuMs / wall * 100,
      cpuMs,
      wall,
      reports,
      periodsExpected: LEASES * Math.floor(runMs / 1000 / billingIntervalSec)
    }
  } finally {
    ledger.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function run () {
  const before = await signingBursts(FLOOR_SECONDS)
  const fast = await meterLeases({ billingIntervalSec: 1, sampleIntervalMs: 1000, runMs: FAST_RUN_MS })
  const bursts = [...before, ...await signingBursts(FLOOR_SECONDS)]
  const burstMs = median(bursts)
  const signPerS = LEASES / (burstMs / 1000)
  const floor = burstMs / 1000 * 100
  // The daemon's defaults: the billing interval from the provider config, sampling left to the meter.
  const billingIntervalSec = parseProviderConfig({ dataDir: tmpdir() }).billing.intervalSec
  const slow = await meterLeases({ billingIntervalSec, sampleIntervalMs: undefined, runMs: billingIntervalSec * 1000 + 1000 })
  return {
    meter_1000_leases_cpu_percent: {
      value: Number(fast.percent.toFixed(1)), unit: '%', leases: LEASES, interval_s: 1, wall_s: (fast.wall / 1000).toFixed(1),
      periods_closed: fast.reports, periods_expected: fast.periodsExpected,
      sign_per_s: Math.round(signPerS), sign_1000_cpu_ms_range: `${Math.min(...bursts).toFixed(0)}-${Math.max(...bursts).toFixed(0)}`, floor_percent: Number(floor.toFixed(1)), vs_floor: (fast.percent / floor).toFixed(2),
      // Per period, which holds even when the meters fall behind (periods_closed < periods_expected).
      cpu_ms_per_period: (fast.cpuMs / Math.max(1, fast.reports)).toFixed(3), sign_ms: (1000 / signPerS).toFixed(3)
    },
    meter_1000_leases_default_cpu_percent: {
      value: Number(slow.percent.toFixed(2)), unit: '%', leases: LEASES, interval_s: billingIntervalSec,
      wall_s: (slow.wall / 1000).toFixed(1), periods_closed: slow.reports, periods_expected: slow.periodsExpected
    }
  }
}
