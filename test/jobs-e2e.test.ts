/**
 * End to end on 127.0.0.1: a renter node leases a GPU straight from a real provider (simulated GPUs,
 * process runner, 1 s billing), runs the training fixture through the job client, pays every usage
 * period with vouchers, and downloads the artifacts.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { extract } from 'tar'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { GpumeshNode } from '@gpumesh/net'
import type { JobEvent } from '@gpumesh/protocol'
import { buildBundle, downloadArtifacts, readBundle, submitJob } from '@gpumesh/renter'
import { startClient, type TestProvider } from './provider-helpers.js'
import { clientOptions, leaseFrom, startJobProvider, trainSpec, trainingBundle } from './jobs-helpers.js'

describe('job protocol end to end', () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let scratch: string

  beforeAll(async () => {
    ;[daemon, client] = await Promise.all([startJobProvider(), startClient()])
    scratch = await mkdtemp(join(tmpdir(), 'gpumesh-jobs-e2e-'))
  })
  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
  })

  it('runs a real job, records usage periods and vouchers, and returns the artifacts it wrote', async () => {
    const wallet = Wallet.createRandom()
    const bundle = await trainingBundle()
    const terms = await leaseFrom(client, daemon.provider.addresses(), wallet, bundle.sha256)
    const ledger = daemon.provider.ledger
    expect(ledger.getLease(terms.leaseId)?.state).toBe('accepted')

    const events: JobEvent[] = []
    const vouchers: bigint[] = []
    const progress: number[] = []
    const outcome = await submitJob({
      ...clientOptions(client, wallet, terms),
      spec: trainSpec(25, 100),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { events.push(e) },
      onVoucher: (v) => { vouchers.push(v.cumulativeAmount) },
      onUploadProgress: (sent) => { progress.push(sent) }
    })

    expect(outcome).toMatchObject({ state: 'completed', exitCode: 0 })
    expect(outcome.paymentStopped).toBeUndefined()
    expect(outcome.voucherRefused).toBeUndefined()
    expect(progress.at(-1)).toBe(bundle.bytes.length)
    // Events: in sequence, started first, the job's log lines, checkpoints, usage, exit last.
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1))
    expect(outcome.lastSequence).toBe(events.length)
    expect(events[0]?.kind).toBe('started')
    expect(events.at(-1)).toMatchObject({ kind: 'exit', exitCode: 0, state: 'completed' })
    const lines = events.filter((e) => e.kind === 'log').map((e) => e.text)
    expect(lines).toContain(`training on GPUs ${terms.gpus.join(',')}`)
    expect(lines).toContain('step 25 loss 0.0718')
    expect(events.some((e) => e.kind === 'checkpoint' && e.text === 'ckpt-25.json')).toBe(true)

    // Ledger: periods tile the run, the last is final; every voucher the renter sent is stored, the newest covers all.
    const periods = ledger.usagePeriods(terms.leaseId)
    expect(periods.length).toBeGreaterThanOrEqual(2)
    periods.forEach((p, i) => { expect(p.startOffsetMs).toBe(i === 0 ? 0 : periods[i - 1]?.endOffsetMs) })
    expect(periods.at(-1)?.final).toBe(true)
    const billed = periods.at(-1)?.cumulativeAmount ?? 0n
    expect(billed).toBeGreaterThan(0n)
    expect(outcome.paid).toBe(billed)
    expect(vouchers.at(-1)).toBe(billed)
    const stored = ledger.vouchers(terms.leaseId)
    expect(stored.map((v) => v.cumulativeAmount)).toEqual(vouchers)
    expect(ledger.latestVoucher(terms.leaseId)?.cumulativeAmount).toBe(billed)
    const lease = ledger.getLease(terms.leaseId)
    expect(lease).toMatchObject({ state: 'completed', exitCode: 0 })
    // GPUs back on offer at once.
    await vi.waitFor(() => { expect(daemon.provider.inventory.gpus().every((g) => g.leaseId === null)).toBeTruthy() }, { timeout: 10_000 })

    // Artifacts: the tar.gz holds exactly what the job wrote.
    const archive = join(scratch, 'artifacts.tar.gz')
    const got = await downloadArtifacts({ ...clientOptions(client, wallet, terms), destFile: archive })
    expect(got.bytes).toBeGreaterThan(0)
    expect(got.sha256).toMatch(/^0x[0-9a-f]{64}$/)
    const out = join(scratch, 'out')
    await import('node:fs/promises').then(async (fs) => { await fs.mkdir(out) })
    await extract({ file: archive, cwd: out })
    const jobRoot = join(daemon.dataDir, 'jobs', terms.leaseId)
    for (const file of ['output/model.json', 'checkpoints/ckpt-25.json', 'checkpoints/ckpt-1.json']) {
      expect(await readFile(join(out, file), 'utf8')).toBe(await readFile(join(jobRoot, file), 'utf8'))
    }
    expect(JSON.parse(await readFile(join(out, 'output/model.json'), 'utf8'))).toMatchObject({ steps: 25 })
  }, 30_000)

  it('runs a job whose bundle is empty (a job file with files: []) and returns what it wrote', async () => {
    const wallet = Wallet.createRandom()
    const emptyDir = join(scratch, 'empty-job')
    await mkdir(emptyDir)
    const bundle = await buildBundle({ baseDir: emptyDir, files: [], destFile: join(scratch, 'empty.tar.gz') })
    expect(bundle.entries).toEqual([])
    const terms = await leaseFrom(client, daemon.provider.addresses(), wallet, bundle.sha256)
    const outcome = await submitJob({
      ...clientOptions(client, wallet, terms),
      spec: { command: '/bin/sh', args: ['-c', 'ls -A; echo ran > "$GPUMESH_OUTPUT_DIR/result.txt"'], env: {}, image: null, maxRunTimeSec: 60 },
      bundle: readBundle(bundle.path),
      bundleSize: bundle.size
    })
    expect(outcome).toMatchObject({ state: 'completed', exitCode: 0 })
    const archive = join(scratch, 'empty-artifacts.tar.gz')
    await downloadArtifacts({ ...clientOptions(client, wallet, terms), destFile: archive })
    const out = join(scratch, 'empty-out')
    await mkdir(out)
    await extract({ file: archive, cwd: out })
    expect(await readFile(join(out, 'output', 'result.txt'), 'utf8')).toBe('ran\n')
  }, 30_000)
})
