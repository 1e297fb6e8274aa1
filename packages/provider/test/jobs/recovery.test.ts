import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import { JobManager, ProcessRunner, closeUsagePeriod, jobPaths, makeJobDirs, recoverLeases, simulatedGpuSampler, systemClock } from '../../src/jobs/index.js'
import { FIXTURES, PROVIDER_KEY, makeLease, tempDir, testLedger, type TestLedger } from './helpers.js'
import { cumulativeAmount } from '@gpumesh/protocol'

describe('recoverLeases (real ledger file, real processes)', () => {
  let t: TestLedger
  let jobsDir: string
  const runner = new ProcessRunner({ stopGraceMs: 500, path: process.env.PATH ?? '/usr/bin:/bin', livenessPollMs: 50 })

  beforeEach(() => { t = testLedger(); jobsDir = tempDir() })
  afterEach(() => { t.cleanup(); rmSync(jobsDir, { recursive: true, force: true }) })

  it('closes a lease whose job died as failed, billed up to the last sample only, once', async () => {
    const leaseId = makeLease(t.ledger, { running: true, gpuCount: 2, pricePerGpuHour: 3_600_000n })
    const lease = t.ledger.getLease(leaseId)
    if (lease === null) throw new Error('no lease')
    closeUsagePeriod(t.ledger, lease, { paymentKey: PROVIDER_KEY },
      { index: 0, startOffsetMs: 0, endOffsetMs: 1000, final: false, previousCumulative: 0n })
    t.ledger.appendUsageSamples([1000, 1500, 1700].map((offsetMs) => ({ leaseId, offsetMs, at: Date.now(), gpuUuid: 'GPU-sim-0', utilizationPercent: 50, memoryUsedMiB: 1, powerW: 100 })))
    // A pid that is certainly not this job any more: our own, with a wrong start time.
    const paths = jobPaths(jobsDir, leaseId)
    await makeJobDirs(paths)
    t.ledger.setLeaseJob(leaseId, { pid: process.pid, pidStartTime: 1, jobDir: paths.root })
    // Reopen the file as a restarted daemon would.
    const path = join(t.dir, 'ledger.db')
    t.ledger.close()
    const ledger = openLedger(path)
    t.ledger = ledger
    const result = await recoverLeases(ledger, runner, { paymentKey: PROVIDER_KEY })
    expect(result).toEqual({ reattached: [], failed: [{ leaseId, billedToOffsetMs: 1700, exitCode: null }] })
    expect(ledger.getLease(leaseId)).toMatchObject({ state: 'failed', stateReason: 'JOB_LOST' })
    const periods = ledger.usagePeriods(leaseId)
    expect(periods.map((p) => [p.startOffsetMs, p.endOffsetMs, p.final])).toEqual([[0, 1000, false], [1000, 1700, true]])
    expect(periods.at(-1)?.cumulativeAmount).toBe(cumulativeAmount(3_600_000n, 1700n * 2n))
    // A second recovery finds nothing to do and bills nothing more.
    expect(await recoverLeases(ledger, runner, { paymentKey: PROVIDER_KEY })).toEqual({ reattached: [], failed: [] })
    expect(ledger.usagePeriods(leaseId)).toHaveLength(2)
  })

  it('re-attaches to a job that outlived the daemon and meters it on', async () => {
    const leaseId = makeLease(t.ledger, { billingIntervalSec: 1, paymentGraceSec: 60 })
    const components = { ledger: t.ledger, runner, clock: systemClock, sampleGpus: simulatedGpuSampler(), paymentKey: PROVIDER_KEY }
    const options = { jobsDir, stopGraceMs: 500, maxBundleBytes: 1 << 20, artifactRetentionSec: 60, logPollMs: 50, sampleIntervalMs: 200 }
    const first = new JobManager(components, options)
    first.start()
    const job = await first.createJob(leaseId, { command: process.execPath, args: [join(FIXTURES, 'trap-term.mjs')], env: {}, image: null, maxRunTimeSec: 60 }, null)
    await new Promise((resolve) => setTimeout(resolve, 1300))
    await first.stop({ jobs: 'detach' }) // the daemon "dies"; the job keeps running
    const periodsBefore = t.ledger.usagePeriods(leaseId).length
    expect(periodsBefore).toBeGreaterThanOrEqual(1)

    const second = new JobManager(components, options)
    second.start()
    const result = await recoverLeases(t.ledger, runner, { jobs: second, paymentKey: PROVIDER_KEY })
    expect(result).toEqual({ reattached: [leaseId], failed: [] })
    const resumed = second.get(leaseId)
    expect(resumed?.pid).toBe(job.pid)
    await new Promise((resolve) => setTimeout(resolve, 1200))
    const outcome = await second.terminate(leaseId, 'RENTER_CANCEL')
    expect(outcome).toMatchObject({ state: 'terminated', reason: 'RENTER_CANCEL', exitCode: 0 })
    const periods = t.ledger.usagePeriods(leaseId)
    expect(periods.length).toBeGreaterThan(periodsBefore)
    for (let i = 1; i < periods.length; i++) expect(periods[i]?.startOffsetMs).toBe(periods[i - 1]?.endOffsetMs)
    await second.stop()
  })
})
