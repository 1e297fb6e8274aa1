// @gpumesh/provider jobs figure: CPU cost of metering. 1,000 running leases (one simulated GPU each)
// metered at a 1 s billing interval and 1 s sampling for ~10 s of real time in one process: every
// second each lease writes a sample and closes, signs and durably appends a usage period. CPU% is
// process.cpuUsage() (user + system) over wall time; 100% is one core.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openLedger } from '@gpumesh/ledger'
import { LeaseMeter, simulatedGpuSampler } from '@gpumesh/provider'
import { paymentKeyAddress, systemClock } from '@gpumesh/protocol'

const LEASES = 1000
const RUN_MS = 10_000
const KEY = '0x' + '11'.repeat(32)
const hex = (s) => `0x${Buffer.from(s).toString('hex').padStart(64, '0').slice(-64)}`

export async function run () {
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
        gpuClass: 'SIM', gpuCount: 1, durationSec: 3600, billingIntervalSec: 1, paymentGraceSec: 3600,
        startDeadline: Date.now() + 60_000, jobHash: hex('job'), eligibleGpuUuids: [`GPU-sim-${i}`]
      })
      leases.push(ledger.transitionLease(leaseId, 'running', 'bench'))
    }
    const sampler = simulatedGpuSampler()
    let reports = 0
    const meters = leases.map((lease) => new LeaseMeter({ ledger, clock: systemClock, sampleGpus: sampler }, lease, {
      paymentKey: KEY, sampleIntervalMs: 1000,
      onReport: () => { reports++ }, onUnpaid: () => {}
    }))
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (const m of meters) m.start()
    await new Promise((resolve) => setTimeout(resolve, RUN_MS))
    for (const m of meters) m.stop()
    const wall = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const percent = ((cpu.user + cpu.system) / 1000) / wall * 100
    return {
      meter_1000_leases_cpu_percent: {
        value: Number(percent.toFixed(1)), unit: '%', leases: LEASES, interval_s: 1, wall_s: (wall / 1000).toFixed(1),
        periods_closed: reports, periods_expected: LEASES * Math.floor(wall / 1000)
      }
    }
  } finally {
    ledger.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
