import { createHash } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  ZERO_ADDRESS, encodeJobEvent, marketDomain, signVoucher, systemClock, verifyUsageReport, type Address, type Bytes32, type JobEvent, type JobSpec, type Voucher
} from '@gpumesh/protocol'
import { JobManager, ProcessRunner, extractBundle, simulatedGpuSampler, type LeaseEndedEvent } from '../../src/jobs/index.js'
import { CHAIN_ID, FIXTURES, PROVIDER, PROVIDER_KEY, RENTER, RENTER_KEY, TOKEN, chunks, makeLease, rawTarGz, tempDir, testLedger, type TestLedger } from './helpers.js'

const spec = (script: string, env: Record<string, string> = {}, maxRunTimeSec = 60): JobSpec => ({
  command: process.execPath, args: [join(FIXTURES, script)], env, image: null, maxRunTimeSec
})

describe('JobManager with the process runner', () => {
  let t: TestLedger
  let jobsDir: string
  let manager: JobManager
  const ended: LeaseEndedEvent[] = []

  beforeEach(() => {
    t = testLedger()
    jobsDir = tempDir()
    manager = new JobManager({
      ledger: t.ledger, clock: systemClock, sampleGpus: simulatedGpuSampler(), paymentKey: PROVIDER_KEY,
      runner: new ProcessRunner({ stopGraceMs: 2000, path: process.env.PATH ?? '/usr/bin:/bin' })
    }, { jobsDir, stopGraceMs: 2000, maxBundleBytes: 1 << 20, artifactRetentionSec: 3600, logPollMs: 50, sampleIntervalMs: 250 })
    manager.start()
    ended.length = 0
    manager.onLeaseEnded((e) => { ended.push(e) })
  })
  afterEach(async () => {
    await manager.stop()
    t.cleanup()
    rmSync(jobsDir, { recursive: true, force: true })
  })

  const voucherFor = (leaseId: Bytes32, amount: bigint, sequence: bigint, verifyingContract: Address = ZERO_ADDRESS): Voucher => {
    const fields = { leaseId, provider: PROVIDER, renter: RENTER, token: TOKEN, cumulativeAmount: amount, sequence }
    const domain = { chainId: CHAIN_ID, verifyingContract }
    return { type: 'voucher', ...fields, ...domain, signature: signVoucher(fields, RENTER_KEY, domain) }
  }

  it('runs the training fixture to completion: events in sequence, final report, artifacts, lease completed', async () => {
    const bundle = rawTarGz([{ path: 'README', body: 'bundle' }])
    const leaseId = makeLease(t.ledger, { billingIntervalSec: 1, paymentGraceSec: 30, jobHash: `0x${createHash('sha256').update(bundle).digest('hex')}` })
    const job = await manager.createJob(leaseId, spec('train.mjs', { TRAIN_STEPS: '12', TRAIN_STEP_MS: '100' }), chunks(bundle))
    expect(t.ledger.getLease(leaseId)).toMatchObject({ state: 'running', jobPid: job.pid })
    const events: JobEvent[] = []
    let sequence = 0n
    job.subscribe(0, (e) => {
      events.push(e)
      if (e.kind === 'usage' && e.report !== undefined && e.report.report.cumulativeAmount > 0n && !e.report.report.final) {
        manager.acceptVoucher(leaseId, voucherFor(leaseId, e.report.report.cumulativeAmount, ++sequence))
      }
    })
    const outcome = await job.done
    expect(outcome).toMatchObject({ state: 'completed', reason: 'EXIT_0', exitCode: 0 })
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1))
    for (const e of events) encodeJobEvent(e) // validates against the wire schema
    expect(events[0]?.kind).toBe('started')
    expect(events.at(-1)).toMatchObject({ kind: 'exit', exitCode: 0, state: 'completed' })
    const logs = events.filter((e) => e.kind === 'log').map((e) => e.text)
    expect(logs[0]).toBe('training on GPUs GPU-sim-0,GPU-sim-1')
    expect(logs).toContain('step 12 loss 0.2824')
    expect(logs.at(-1)).toBe('done')
    expect(events.filter((e) => e.kind === 'checkpoint').map((e) => e.text)).toContain('ckpt-12.json')
    const usage = events.filter((e) => e.kind === 'usage')
    expect(usage.length).toBeGreaterThanOrEqual(1)
    expect(usage.at(-1)?.report?.report.final).toBe(true)
    expect(t.ledger.usagePeriods(leaseId).at(-1)?.final).toBe(true)
    expect(ended).toEqual([{ leaseId, state: 'completed', reason: 'EXIT_0' }])
    // Artifacts: output and checkpoints, as a tar.gz stream.
    const out = tempDir()
    try {
      await extractBundle(manager.artifacts(leaseId), out, { maxCompressedBytes: 1 << 20, maxUncompressedBytes: 1 << 22 })
      expect(JSON.parse(readFileSync(join(out, 'output', 'model.json'), 'utf8'))).toMatchObject({ steps: 12 })
      expect(JSON.parse(readFileSync(join(out, 'checkpoints', 'ckpt-12.json'), 'utf8'))).toMatchObject({ step: 12 })
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })

  it('with an escrow contract: reports are signed under the market domain, vouchers checked under the settlement domain', async () => {
    const escrow = '0x5fbdb2315678afecb367f032d93f642f64180aa3' as Address
    await manager.stop()
    manager = new JobManager({
      ledger: t.ledger, clock: systemClock, sampleGpus: simulatedGpuSampler(), paymentKey: PROVIDER_KEY,
      runner: new ProcessRunner({ stopGraceMs: 2000, path: process.env.PATH ?? '/usr/bin:/bin' })
    }, { jobsDir, stopGraceMs: 2000, maxBundleBytes: 1 << 20, artifactRetentionSec: 3600, logPollMs: 50, sampleIntervalMs: 250 })
    manager.start()
    const leaseId = makeLease(t.ledger, { billingIntervalSec: 1, paymentGraceSec: 30, escrow })
    const job = await manager.createJob(leaseId, spec('train.mjs', { TRAIN_STEPS: '15', TRAIN_STEP_MS: '100' }), null)
    const signers: string[] = []
    const refused: string[] = []
    let sequence = 0n
    // Listeners run inside the meter: record, assert after.
    const attempt = (v: Voucher): void => { try { manager.acceptVoucher(leaseId, v) } catch (err) { refused.push((err as { code: string }).code) } }
    job.subscribe(0, (e) => {
      if (e.kind !== 'usage' || e.report === undefined) return
      // What the renter's PaymentPolicy checks: the provider's signature under marketDomain(chainId).
      try { signers.push(verifyUsageReport(e.report, marketDomain(CHAIN_ID))) } catch { signers.push('invalid') }
      const amount = e.report.report.cumulativeAmount
      attempt(voucherFor(leaseId, amount, sequence + 1n, ZERO_ADDRESS))
      attempt(voucherFor(leaseId, amount, ++sequence, escrow))
    })
    expect(await job.done).toMatchObject({ state: 'completed', reason: 'EXIT_0' })
    const periods = t.ledger.usagePeriods(leaseId)
    expect(periods.length).toBeGreaterThanOrEqual(2)
    // Every report verifies; a voucher under the market domain is refused, the escrow's accepted and paid in full.
    expect(signers).toEqual(periods.map(() => PROVIDER))
    expect(refused).toEqual(periods.map(() => 'WRONG_DOMAIN'))
    expect(t.ledger.latestVoucher(leaseId)?.cumulativeAmount).toBe(periods.at(-1)?.cumulativeAmount)
  })

  it('names the job\'s process jobPid in its log lines: the daemon\'s own pid keeps the key pid', async () => {
    const lines: string[] = []
    const logger = pino({ base: { pid: process.pid } }, { write: (line: string) => { lines.push(line) } })
    const logged = new JobManager({
      ledger: t.ledger, clock: systemClock, sampleGpus: simulatedGpuSampler(), paymentKey: PROVIDER_KEY, logger,
      runner: new ProcessRunner({ stopGraceMs: 2000 })
    }, { jobsDir, stopGraceMs: 2000, maxBundleBytes: 1 << 20, artifactRetentionSec: 3600 })
    logged.start()
    try {
      const job = await logged.createJob(makeLease(t.ledger), { command: '/bin/sh', args: ['-c', 'exit 0'], env: {}, image: null, maxRunTimeSec: 60 }, null)
      await job.done
      const running = lines.find((l) => l.includes('"job running"'))
      expect(running?.match(/"pid":/g)).toHaveLength(1)
      expect(JSON.parse(running ?? '{}')).toMatchObject({ pid: process.pid, jobPid: job.pid })
    } finally {
      await logged.stop()
    }
  })

  it('ends a lease failed with the exit code when the job fails', async () => {
    const leaseId = makeLease(t.ledger)
    const job = await manager.createJob(leaseId, { command: '/bin/sh', args: ['-c', 'echo boom >&2; exit 3'], env: {}, image: null, maxRunTimeSec: 60 }, null)
    const outcome = await job.done
    expect(outcome).toMatchObject({ state: 'failed', reason: 'EXIT_3', exitCode: 3 })
    expect(job.events.history().some((e) => e.kind === 'log' && e.stream === 'stderr' && e.text === 'boom')).toBe(true)
    expect(t.ledger.getLease(leaseId)).toMatchObject({ state: 'failed', exitCode: 3 })
  })

  it('stops an unpaid job (SIGTERM lets it checkpoint) and ends the lease terminated UNPAID', async () => {
    const leaseId = makeLease(t.ledger, { billingIntervalSec: 1, paymentGraceSec: 1 })
    const job = await manager.createJob(leaseId, spec('train.mjs', { TRAIN_STEPS: '1000', TRAIN_STEP_MS: '100' }), null)
    const outcome = await job.done
    expect(outcome).toMatchObject({ state: 'terminated', reason: 'UNPAID' })
    expect(t.ledger.getLease(leaseId)?.stateReason).toBe('UNPAID')
    // Stopped within one interval plus the grace (plus the stop itself): billed ≤ 2 s and a bit.
    expect(t.ledger.lastUsagePeriod(leaseId)?.endOffsetMs).toBeLessThan(3000)
    expect(job.events.history().some((e) => e.kind === 'log' && e.text?.startsWith('stopped at step') === true)).toBe(true)
    expect(ended.at(-1)).toEqual({ leaseId, state: 'terminated', reason: 'UNPAID' })
  })

  it('terminates on renter cancel and on max run time', async () => {
    const a = makeLease(t.ledger, { name: 'cancel' })
    const jobA = await manager.createJob(a, spec('sleep.mjs'), null)
    expect(await manager.terminate(a, 'RENTER_CANCEL')).toMatchObject({ state: 'terminated', reason: 'RENTER_CANCEL' })
    expect(jobA.events.history().at(-1)).toMatchObject({ kind: 'terminated', reason: 'RENTER_CANCEL' })
    const b = makeLease(t.ledger, { name: 'limit' })
    const jobB = await manager.createJob(b, spec('sleep.mjs', {}, 1), null)
    expect(await jobB.done).toMatchObject({ state: 'terminated', reason: 'MAX_RUNTIME' })
  })

  it('fails the lease when the bundle does not match the order\'s jobHash, and refuses a second start', async () => {
    const leaseId = makeLease(t.ledger)
    await expect(manager.createJob(leaseId, spec('env.mjs'), chunks(rawTarGz([{ path: 'x', body: 'y' }]))))
      .rejects.toMatchObject({ code: 'BUNDLE_HASH_MISMATCH' })
    expect(t.ledger.getLease(leaseId)?.state).toBe('failed')
    await expect(manager.createJob(leaseId, spec('env.mjs'), null)).rejects.toMatchObject({ code: 'LEASE_NOT_STARTABLE' })
    const evil = makeLease(t.ledger, { name: 'evil' })
    await expect(manager.createJob(evil, spec('env.mjs'), chunks(rawTarGz([{ path: '../x', body: 'y' }]))))
      .rejects.toMatchObject({ name: 'BundleError', code: 'PATH_TRAVERSAL' })
    expect(t.ledger.getLease(evil)).toMatchObject({ state: 'failed', stateReason: 'BAD_BUNDLE' })
  })

  it('removes artifacts of leases ended longer ago than the retention', async () => {
    const leaseId = makeLease(t.ledger)
    await (await manager.createJob(leaseId, spec('env.mjs'), null)).done
    expect(await manager.cleanupArtifacts()).toEqual([])
    const later = new JobManager({
      ledger: t.ledger, runner: null, sampleGpus: simulatedGpuSampler(), paymentKey: PROVIDER_KEY,
      clock: { now: () => Date.now() + 3_601_000, monotonicNow: () => 0 }
    }, { jobsDir, stopGraceMs: 0, maxBundleBytes: 1, artifactRetentionSec: 3600 })
    expect(await later.cleanupArtifacts()).toEqual([leaseId])
  })
})
