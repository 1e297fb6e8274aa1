/**
 * The job manager around a runner's set-up (what the docker runner does before its container starts):
 * failures end the lease unbilled with their reason, set-up progress is in the job's events before
 * `started`, and a lease that moved on meanwhile gets no job running unmetered. The runner is the real
 * process runner, wrapped to add the set-up step.
 */
import { createHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { systemClock, type JobSpec } from '@gpumesh/protocol'
import {
  JobError, JobManager, ProcessRunner, isSameProcessAlive, simulatedGpuSampler,
  type JobRunner, type RunRequest, type RunningJob
} from '../../src/jobs/index.js'
import { PROVIDER_KEY, chunks, makeLease, rawTarGz, tempDir, testLedger, type TestLedger } from './helpers.js'

const spec: JobSpec = { command: 'sh', args: ['-c', 'echo ran; sleep 30'], env: {}, image: 'img:1', maxRunTimeSec: 60 }
const bundle = rawTarGz([{ path: 'README', body: 'bundle' }])
const jobHash = `0x${createHash('sha256').update(bundle).digest('hex')}` as const

/** The process runner with a set-up step first (`setup` may report progress, throw, or do anything). */
function withSetup (setup: (request: RunRequest) => Promise<void>): JobRunner & { requests: RunRequest[], started: RunningJob[] } {
  const inner = new ProcessRunner({ stopGraceMs: 1000, path: process.env.PATH ?? '/usr/bin:/bin' })
  const requests: RunRequest[] = []
  const started: RunningJob[] = []
  return {
    kind: 'docker',
    requests,
    started,
    start: async (request) => {
      requests.push(request)
      await setup(request)
      const running = await inner.start(request)
      started.push(running)
      return running
    },
    attach: async (job) => await inner.attach(job)
  }
}

describe('JobManager and the runner\'s set-up', () => {
  let t: TestLedger
  let jobsDir: string
  let manager: JobManager | null = null

  const managerWith = (runner: JobRunner): JobManager => {
    manager = new JobManager({ ledger: t.ledger, clock: systemClock, sampleGpus: simulatedGpuSampler(), paymentKey: PROVIDER_KEY, runner }, {
      jobsDir, stopGraceMs: 1000, maxBundleBytes: 1 << 20, artifactRetentionSec: 3600, logPollMs: 50, sampleIntervalMs: 100
    })
    manager.start()
    return manager
  }

  beforeEach(() => {
    t = testLedger()
    jobsDir = tempDir()
  })
  afterEach(async () => {
    await manager?.stop()
    manager = null
    t.cleanup()
    rmSync(jobsDir, { recursive: true, force: true })
  })

  it('ends the lease failed with the set-up\'s reason, unbilled: RUNNER_FAILED as the provider\'s fault, IMAGE_UNAVAILABLE', async () => {
    for (const code of ['RUNNER_FAILED', 'IMAGE_UNAVAILABLE'] as const) {
      const runner = withSetup(async () => { throw new JobError(code, `set-up failed: ${code}`) })
      const jobs = managerWith(runner)
      const leaseId = makeLease(t.ledger, { name: `fail-${code}`, jobHash })
      await expect(jobs.createJob(leaseId, spec, chunks(bundle))).rejects.toMatchObject({ name: 'JobError', code })
      expect(t.ledger.getLease(leaseId)).toMatchObject({ state: 'failed', stateReason: code, startedAt: null })
      const event = t.ledger.leaseEvents(leaseId).find((e) => e.reason === code)
      expect(event?.detail).toEqual(code === 'RUNNER_FAILED' ? { message: 'set-up failed: RUNNER_FAILED', fault: 'provider' } : { message: 'set-up failed: IMAGE_UNAVAILABLE' })
      expect(t.ledger.usagePeriods(leaseId)).toEqual([])
      expect(t.ledger.lastSample(leaseId)).toBeNull()
      await jobs.stop()
    }
  })

  it('puts the set-up\'s progress in the job\'s events before `started`, and simulated GPUs reach the runner as simulated', async () => {
    const runner = withSetup(async (request) => {
      request.progress?.('pulling img:1')
      request.progress?.('pulled img:1: 1.0 MiB')
    })
    const jobs = managerWith(runner)
    // The test ledger's GPUs are simulated; mark one as an NVIDIA model, as a simulated H100 is.
    t.ledger.upsertGpus([{ uuid: 'GPU-sim-0', index: 0, vendor: 'nvidia', name: 'Sim H100', class: 'SIM', memoryMiB: 80_000, simulated: true, state: 'free', problems: [] }])
    const leaseId = makeLease(t.ledger, { name: 'progress', jobHash, gpuCount: 1 })
    const job = await jobs.createJob(leaseId, spec, chunks(bundle))
    expect(runner.requests[0]?.vendor).toBe('simulated')
    expect(job.events.history().slice(0, 3).map((e) => [e.kind, e.text])).toEqual([
      ['log', 'pulling img:1'], ['log', 'pulled img:1: 1.0 MiB'], ['started', undefined]
    ])
    await job.stop('RENTER_CANCEL')
  })

  it('stops a job whose lease moved on while the runner set up (cancelled, or expired during a long pull)', async () => {
    let leaseId = ''
    const runner = withSetup(async () => { t.ledger.transitionLease(leaseId, 'terminated', 'RENTER_CANCEL') })
    const jobs = managerWith(runner)
    leaseId = makeLease(t.ledger, { name: 'moved-on', jobHash })
    await expect(jobs.createJob(leaseId, spec, chunks(bundle))).rejects.toThrow()
    const running = runner.started[0]
    expect(running).toBeDefined()
    expect(await running?.exited).toMatchObject({ cause: 'stopped' })
    expect(await isSameProcessAlive(running?.pid ?? 0, running?.pidStartTime ?? 0)).toBe(false)
    expect(t.ledger.getLease(leaseId)).toMatchObject({ state: 'terminated', stateReason: 'RENTER_CANCEL' })
    expect(jobs.get(leaseId)).toBeUndefined()
  })
})
