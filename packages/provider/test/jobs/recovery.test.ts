import { appendFileSync, rmSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import {
  EVENTS_FILE, JobManager, ProcessRunner, closeUsagePeriod, isSameProcessAlive, jobPaths, makeJobDirs, recoverLeases, simulatedGpuSampler,
  type Job
} from '../../src/jobs/index.js'
import { CHAIN_ID, FIXTURES, PROVIDER, PROVIDER_KEY, makeLease, tempDir, testLedger, type TestLedger } from './helpers.js'
import { cumulativeAmount, marketDomain, systemClock, verifyUsageReport, type Bytes32, type JobEvent } from '@gpumesh/protocol'

type ManagerOptions = Partial<ConstructorParameters<typeof JobManager>[1]>

describe('recoverLeases (real ledger file, real processes)', () => {
  let t: TestLedger
  let jobsDir: string
  const runner = new ProcessRunner({ stopGraceMs: 500, path: process.env.PATH ?? '/usr/bin:/bin', livenessPollMs: 50 })

  beforeEach(() => { t = testLedger(); jobsDir = tempDir() })
  afterEach(() => { t.cleanup(); rmSync(jobsDir, { recursive: true, force: true }) })

  /**
   * A lease billed every second and its job (`fixture` from the job fixtures, with `env`) started by a
   * daemon's job manager, `first`; `daemon()` makes the next daemon's manager on the same ledger and jobs
   * dir, with `more` options.
   */
  const startJob = async (fixture: string, env: Record<string, string> = {}): Promise<{ leaseId: Bytes32, daemon: (more?: ManagerOptions) => JobManager, first: JobManager, job: Job }> => {
    const leaseId = makeLease(t.ledger, { billingIntervalSec: 1, paymentGraceSec: 60 })
    const daemon = (more: ManagerOptions = {}): JobManager => new JobManager(
      { ledger: t.ledger, runner, clock: systemClock, sampleGpus: simulatedGpuSampler(), paymentKey: PROVIDER_KEY },
      { jobsDir, stopGraceMs: 500, maxBundleBytes: 1 << 20, artifactRetentionSec: 60, logPollMs: 50, sampleIntervalMs: 200, ...more }
    )
    const first = daemon()
    first.start()
    const job = await first.createJob(leaseId, { command: process.execPath, args: [join(FIXTURES, fixture)], env, image: null, maxRunTimeSec: 60 }, null)
    return { leaseId, daemon, first, job }
  }

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
    expect(result).toEqual({ reattached: [], failed: [{ leaseId, billedToOffsetMs: 1700, exitCode: null }], completed: [] })
    expect(ledger.getLease(leaseId)).toMatchObject({ state: 'failed', stateReason: 'JOB_LOST' })
    const periods = ledger.usagePeriods(leaseId)
    expect(periods.map((p) => [p.startOffsetMs, p.endOffsetMs, p.final])).toEqual([[0, 1000, false], [1000, 1700, true]])
    expect(periods.at(-1)?.cumulativeAmount).toBe(cumulativeAmount(3_600_000n, 1700n * 2n))
    // A second recovery finds nothing to do and bills nothing more.
    expect(await recoverLeases(ledger, runner, { paymentKey: PROVIDER_KEY })).toEqual({ reattached: [], failed: [], completed: [] })
    expect(ledger.usagePeriods(leaseId)).toHaveLength(2)
  })

  it('closes a lease whose job exited 0 while the daemon was down as completed, billed the same way', async () => {
    const leaseId = makeLease(t.ledger, { running: true, gpuCount: 1, pricePerGpuHour: 3_600_000n })
    t.ledger.appendUsageSamples([0, 1000, 2000].map((offsetMs) => ({ leaseId, offsetMs, at: Date.now(), gpuUuid: 'GPU-sim-0', utilizationPercent: 90, memoryUsedMiB: 1, powerW: 300 })))
    const paths = jobPaths(jobsDir, leaseId)
    await makeJobDirs(paths)
    await writeFile(paths.exitCodeFile, '0\n') // what the job's wrapper writes when it exits
    t.ledger.setLeaseJob(leaseId, { pid: process.pid, pidStartTime: 1, jobDir: paths.root })
    const result = await recoverLeases(t.ledger, runner, { paymentKey: PROVIDER_KEY })
    expect(result).toEqual({ reattached: [], failed: [], completed: [{ leaseId, billedToOffsetMs: 2000, exitCode: 0 }] })
    expect(t.ledger.getLease(leaseId)).toMatchObject({ state: 'completed', stateReason: 'EXIT_0' })
    expect(t.ledger.usagePeriods(leaseId).map((p) => [p.startOffsetMs, p.endOffsetMs, p.final])).toEqual([[0, 2000, true]])
    // A job that exited non-zero while the daemon was down stays a failure.
    const other = makeLease(t.ledger, { running: true })
    const otherPaths = jobPaths(jobsDir, other)
    await makeJobDirs(otherPaths)
    await writeFile(otherPaths.exitCodeFile, '1\n')
    t.ledger.setLeaseJob(other, { pid: process.pid, pidStartTime: 1, jobDir: otherPaths.root })
    expect((await recoverLeases(t.ledger, runner, { paymentKey: PROVIDER_KEY })).failed).toEqual([{ leaseId: other, billedToOffsetMs: 0, exitCode: 1 }])
    expect(t.ledger.getLease(other)).toMatchObject({ state: 'failed', stateReason: 'JOB_LOST' })
  })

  it('re-attaches to a job that outlived the daemon and meters it on', async () => {
    const { leaseId, daemon, first, job } = await startJob('trap-term.mjs')
    // Once a usage period is in the ledger (billing every second).
    await vi.waitFor(() => { expect(t.ledger.usagePeriods(leaseId).length).toBeGreaterThanOrEqual(1) }, { timeout: 10_000 })
    await first.stop({ jobs: 'detach' }) // the daemon "dies"; the job keeps running
    const periodsBefore = t.ledger.usagePeriods(leaseId).length
    expect(periodsBefore).toBeGreaterThanOrEqual(1)

    const second = daemon()
    second.start()
    const result = await recoverLeases(t.ledger, runner, { jobs: second, paymentKey: PROVIDER_KEY })
    expect(result).toEqual({ reattached: [leaseId], failed: [], completed: [] })
    const resumed = second.get(leaseId)
    expect(resumed?.pid).toBe(job.pid)
    // The second daemon meters it on: a period of its own reaches the ledger before the lease ends.
    await vi.waitFor(() => { expect(t.ledger.usagePeriods(leaseId).length).toBeGreaterThan(periodsBefore) }, { timeout: 10_000 })
    const outcome = await second.terminate(leaseId, 'RENTER_CANCEL')
    expect(outcome).toMatchObject({ state: 'terminated', reason: 'RENTER_CANCEL', exitCode: 0 })
    const periods = t.ledger.usagePeriods(leaseId)
    expect(periods.length).toBeGreaterThan(periodsBefore)
    for (let i = 1; i < periods.length; i++) expect(periods[i]?.startOffsetMs).toBe(periods[i - 1]?.endOffsetMs)
    await second.stop()
  })

  it('a re-attached job keeps its event log: same sequences, no log line lost or repeated, missing periods sent first', async () => {
    const { leaseId, daemon, first, job } = await startJob('train.mjs', { TRAIN_STEPS: '25', TRAIN_STEP_MS: '100' })
    const before: JobEvent[] = []
    job.subscribe(0, (e) => { before.push(e) })
    // Once the first usage report is in the event log (its period is in the ledger before it).
    await vi.waitFor(() => { expect(before.some((e) => e.kind === 'usage')).toBe(true) }, { timeout: 10_000 })
    await first.stop({ jobs: 'detach' }) // the daemon "dies"; the job keeps running
    // It died after writing a period to the ledger and before its event, mid-way through writing another event.
    const lease = t.ledger.getLease(leaseId)
    const last = t.ledger.lastUsagePeriod(leaseId)
    if (lease === null || last === null) throw new Error('no lease or period')
    closeUsagePeriod(t.ledger, lease, { paymentKey: PROVIDER_KEY }, {
      index: last.periodIndex + 1, startOffsetMs: last.endOffsetMs, endOffsetMs: last.endOffsetMs + 100, final: false, previousCumulative: last.cumulativeAmount
    })
    appendFileSync(join(jobPaths(jobsDir, leaseId).root, EVENTS_FILE), '{"type":"job-event","leaseId":"0x')

    const second = daemon({ maxEventHistory: 5 })
    second.start()
    expect(await recoverLeases(t.ledger, runner, { jobs: second, paymentKey: PROVIDER_KEY })).toEqual({ reattached: [leaseId], failed: [], completed: [] })
    const resumed = second.get(leaseId)
    if (resumed === undefined) throw new Error('not resumed')
    const after: JobEvent[] = []
    resumed.subscribe(resumed.events.lastSequence, (e) => { after.push(e) })
    expect(await resumed.done).toMatchObject({ state: 'completed', reason: 'EXIT_0' })
    // The whole log, read back beyond the 5 events held in memory: the first daemon's events, then the second's.
    const all: JobEvent[] = []
    for await (const e of resumed.events.read(0)) all.push(e)
    expect(all.slice(0, before.length)).toEqual(before)
    expect(all.slice(-after.length)).toEqual(after)
    expect(all.map((e) => e.sequence)).toEqual(all.map((_, i) => i + 1))
    expect(all.filter((e) => e.kind === 'started')).toHaveLength(1)
    // Every period once, in order, each verifiable; the one the file lacked comes first after the restart.
    const reports = all.flatMap((e) => (e.kind === 'usage' && e.report !== undefined ? [e.report] : []))
    expect(reports.map((r) => r.report.periodIndex)).toEqual(t.ledger.usagePeriods(leaseId).map((p) => p.periodIndex))
    expect(reports.map((r) => r.report.periodIndex)).toEqual(reports.map((_, i) => i))
    for (const r of reports) expect(verifyUsageReport(r, marketDomain(CHAIN_ID))).toBe(PROVIDER)
    const lastBefore = before.at(-1)?.sequence ?? 0
    expect(all.find((e) => e.kind === 'usage' && e.sequence > lastBefore)?.report?.report.periodIndex).toBe(last.periodIndex + 1)
    // Log lines across the two daemons: every step once, in order.
    const lines = all.filter((e) => e.kind === 'log').map((e) => e.text)
    expect(lines).toEqual(['training on GPUs GPU-sim-0,GPU-sim-1', ...Array.from({ length: 25 }, (_, i) => expect.stringMatching(new RegExp(`^step ${i + 1} loss `))), 'done'])
    const checkpoints = all.filter((e) => e.kind === 'checkpoint').map((e) => e.text)
    expect(new Set(checkpoints).size).toBe(checkpoints.length)
    expect(all.at(-1)).toMatchObject({ kind: 'exit', state: 'completed', exitCode: 0 })
    await second.stop()

    // A third daemon, after the end: a renter attaching replays the same log from the file.
    const third = daemon()
    const ended = await third.endedEvents(leaseId)
    const replayed: JobEvent[] = []
    for await (const e of ended?.read(0) ?? []) replayed.push(e)
    expect(replayed).toEqual(all)
  })

  it('a lease closed JOB_LOST replays its stored events, then the final period and the ending from the ledger', async () => {
    const { leaseId, daemon, first, job } = await startJob('sleep.mjs')
    // Once a usage report is among the stored events.
    await vi.waitFor(() => { expect(job.events.history().some((e) => e.kind === 'usage')).toBe(true) }, { timeout: 10_000 })
    const before = job.events.history()
    await first.stop({ jobs: 'detach' })
    const { jobPid, jobPidStartTime } = t.ledger.getLease(leaseId) ?? {}
    if (jobPid == null || jobPidStartTime == null) throw new Error('no job pid in the ledger')
    process.kill(-job.pid, 'SIGKILL') // the job dies with the daemon
    await vi.waitFor(async () => { expect(await isSameProcessAlive(jobPid, jobPidStartTime)).toBe(false) }, { timeout: 5_000 })
    const second = daemon()
    const result = await recoverLeases(t.ledger, runner, { jobs: second, paymentKey: PROVIDER_KEY })
    expect(result.failed.map((f) => f.leaseId)).toEqual([leaseId])
    const log = await second.endedEvents(leaseId)
    const replayed: JobEvent[] = []
    for await (const e of log?.read(0) ?? []) replayed.push(e)
    expect(replayed.slice(0, before.length)).toEqual(before)
    expect(replayed.map((e) => e.sequence)).toEqual(replayed.map((_, i) => i + 1))
    const periods = t.ledger.usagePeriods(leaseId)
    expect(replayed.filter((e) => e.kind === 'usage').map((e) => e.report?.report.periodIndex)).toEqual(periods.map((p) => p.periodIndex))
    expect(replayed.at(-1)).toMatchObject({ kind: 'exit', state: 'failed' })
    // Asked again (another renter, another attach): the same log, nothing appended twice.
    const again = await daemon().endedEvents(leaseId)
    expect(again?.lastSequence).toBe(replayed.length)
  })
})
