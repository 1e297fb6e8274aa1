/**
 * kill -9 of a real `gpumesh provider start` in the middle of a paid job, then a restart: the restarted
 * daemon re-attaches to the job, the renter attaches again from the last event it saw and pays on, and
 * the job completes. Event sequences and log lines carry on across the two daemons without a gap or a
 * repeat, every period is paid, the ledger's periods and vouchers are intact, and what is billed is at
 * most what the job really ran, plus one sample. Runs the built CLI (`npx tsc -b` first).
 */
import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import type { GpumeshNode } from '@gpumesh/net'
import type { JobEvent } from '@gpumesh/protocol'
import { attachJob, submitJob } from '@gpumesh/renter'
import { startClient } from './provider-helpers.js'
import { daemonConfig, initDaemonDir, killChildren, runCli, spawnCli, spawnDaemon, type ProviderJson, type SpawnedDaemon } from './cli-helpers.js'
import { clientOptions, leaseFrom, trainSpec, trainingBundle } from './jobs-helpers.js'

const PASSWORD = 'correct horse battery staple'
const TRAIN = fileURLToPath(new URL('../packages/provider/test/fixtures/jobs/train.mjs', import.meta.url))
/** The meter samples every second at a 1 s billing interval. */
const SAMPLE_MS = 1000

describe('kill -9 of the daemon during a job', () => {
  let dataDir: string
  let remove: () => Promise<void>
  let client: GpumeshNode
  const children: ChildProcess[] = []
  const env = { ...process.env, GPUMESH_PASSWORD: PASSWORD, GPUMESH_HOME: '' }

  const start = async (previousPid: number | null, extra: string[] = []): Promise<SpawnedDaemon & { info: ProviderJson }> =>
    await spawnDaemon(dataDir, { env, children, previousPid, args: extra })

  beforeAll(async () => {
    ;({ dir: dataDir, remove } = await initDaemonDir(daemonConfig(2, [
      'billing:',
      '  intervalSec: 1',
      // Room for the restart: the renter attaches only once the new daemon listens.
      '  paymentGraceSec: 5',
      'runner:',
      '  kind: process',
      '  stopGraceSec: 2',
      '  process: { sameUser: true }'
    ]), { env }))
    client = await startClient()
  })

  afterAll(async () => {
    killChildren(children)
    await client?.stop()
    await remove?.()
  })

  it('re-attaches the job and the renter: it completes, paid in full, its events and logs whole, billed no more than it ran', async () => {
    const first = await start(null)
    const wallet = Wallet.createRandom()
    const bundle = await trainingBundle()
    const terms = await leaseFrom(client, first.info.addresses, wallet, bundle.sha256)
    const steps = 100

    const seen: JobEvent[] = []
    const vouchersSent: bigint[] = []
    const job = submitJob({
      ...clientOptions(client, wallet, terms),
      // ~10 s of training; the daemon dies about 2.5 s in and is back a few seconds later.
      spec: trainSpec(steps, 100),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { seen.push(e) },
      onVoucher: (v) => { vouchersSent.push(v.cumulativeAmount) }
    }).catch((err: unknown) => err)
    await vi.waitFor(() => { expect(seen.filter((e) => e.kind === 'usage').length >= 2 && vouchersSent.length >= 2).toBeTruthy() }, { timeout: 15_000 })
    // Until the daemon's ledger holds every voucher sent so far (the last may still be on its way); the
    // kill follows in the same turn, before another usage report can come in and be paid.
    const watching = openLedger(join(dataDir, 'ledger.sqlite'))
    try {
      await vi.waitFor(() => { expect(watching.vouchers(terms.leaseId).map((v) => v.cumulativeAmount)).toEqual(vouchersSent) }, { timeout: 10_000 })
    } finally {
      watching.close()
    }
    first.child.kill('SIGKILL')
    await new Promise((resolve) => first.child.once('exit', resolve))
    expect(await job).toMatchObject({ name: 'JobClientError' })
    const firstSession = [...seen]
    const lastSeen = firstSession.at(-1)?.sequence ?? 0

    const second = await start(first.info.pid)
    // The renter attaches again from the last event it saw and pays on until the job ends. (The new
    // daemon listens on another port; a renter learns it from the provider's offers.)
    const moved = { ...terms, providerAddresses: second.info.addresses }
    const outcome = await attachJob({ ...clientOptions(client, wallet, moved), fromSequence: lastSeen, onEvent: (e) => { seen.push(e) } })
    expect(outcome).toMatchObject({ state: 'completed', exitCode: 0 })
    expect(outcome.paymentStopped).toBeUndefined()
    expect(outcome.voucherRefused).toBeUndefined()
    second.child.kill('SIGTERM')
    expect(await new Promise((resolve) => second.child.once('exit', resolve))).toBe(0)

    // One event stream across both daemons: sequences 1, 2, 3, ... , picked up right after the last one seen.
    expect(seen[firstSession.length]?.sequence).toBe(lastSeen + 1)
    expect(seen.map((e) => e.sequence)).toEqual(seen.map((_, i) => i + 1))
    expect(seen.filter((e) => e.kind === 'started')).toHaveLength(1)
    expect(seen.at(-1)).toMatchObject({ kind: 'exit', state: 'completed', exitCode: 0 })
    // Every log line the job printed, once and in order, across the two sessions.
    expect(seen.filter((e) => e.kind === 'log' && e.stream === 'stdout').map((e) => e.text)).toEqual([
      'training on GPUs GPU-sim-H100-SXM-80GB-0',
      ...Array.from({ length: steps }, (_, i) => expect.stringMatching(new RegExp(`^step ${i + 1} loss `))),
      'done'
    ])
    // Every usage period reached the renter once, in order.
    const reported = seen.flatMap((e) => (e.kind === 'usage' && e.report !== undefined ? [e.report.report.periodIndex] : []))

    const ledger = openLedger(join(dataDir, 'ledger.sqlite'))
    try {
      const lease = ledger.getLease(terms.leaseId)
      expect(lease).toMatchObject({ state: 'completed', stateReason: 'EXIT_0' })
      const periods = ledger.usagePeriods(terms.leaseId)
      expect(reported).toEqual(periods.map((p) => p.periodIndex))
      // Periods tile the run without a gap or an overlap, across the crash; the last is final.
      periods.forEach((p, i) => {
        expect(p.periodIndex).toBe(i)
        expect(p.startOffsetMs).toBe(i === 0 ? 0 : periods[i - 1]?.endOffsetMs)
      })
      expect(periods.at(-1)?.final).toBe(true)
      // Every voucher the renter sent before the crash is there, and the last one pays every period.
      const stored = ledger.vouchers(terms.leaseId).map((v) => v.cumulativeAmount)
      expect(stored.slice(0, vouchersSent.length)).toEqual(vouchersSent)
      expect(ledger.latestVoucher(terms.leaseId)?.cumulativeAmount).toBe(periods.at(-1)?.cumulativeAmount)
      expect(outcome.paid).toBe(periods.at(-1)?.cumulativeAmount)
      // Billed time ≤ the job's real run time (start → its last checkpoint, written at its end) + one sample.
      const billedMs = periods.at(-1)?.endOffsetMs ?? 0
      const checkpoints = join(dataDir, 'jobs', terms.leaseId, 'checkpoints')
      const lastWrite = Math.max(...readdirSync(checkpoints).map((f) => statSync(join(checkpoints, f)).mtimeMs))
      const ranMs = lastWrite - (lease?.startedAt ?? 0)
      expect(billedMs).toBeGreaterThan(0)
      expect(billedMs).toBeLessThanOrEqual(ranMs + SAMPLE_MS)
    } finally {
      ledger.close()
    }
  }, 45_000)

  it('lease submit keeps re-attaching while the provider restarts, and gets the job\'s end and artifacts; lease fetch gets them again', async () => {
    const first = await start(null)
    const renterDir = join(dataDir, 'renter-home')
    const init = await runCli(['init', '--role', 'renter', '--data-dir', renterDir], { env })
    expect(init.code, init.stderr).toBe(0)
    const jobDir = join(dataDir, 'renter-job')
    await mkdir(jobDir, { recursive: true })
    await copyFile(TRAIN, join(jobDir, 'train.mjs'))
    await writeFile(join(jobDir, 'job.yaml'), [
      'gpus: { count: 1, classes: [H100-SXM-80GB] }',
      'maxPricePerGpuHour: "2.00"',
      'token: { decimals: 6, chainId: 31337 }',
      'durationSec: 600',
      `command: ${JSON.stringify(process.execPath)}`,
      'args: [train.mjs]',
      // ~12 s of training: the job outlives the daemon's restart, which re-attaches to it.
      'env: { TRAIN_STEPS: 120, TRAIN_STEP_MS: 100 }',
      'maxRunTimeSec: 120',
      'files: [train.mjs]',
      'allowSimulated: true',
      ''
    ].join('\n'))
    const submit = spawnCli(['lease', 'submit', 'job.yaml', '--provider', first.info.addresses[0] ?? '', '--data-dir', renterDir], { env, cwd: jobDir, children })
    // Kill the daemon once the renter has paid for something (its lease record says so).
    const records = join(renterDir, 'renter', 'leases')
    const paidRecord = async (): Promise<{ leaseId: string, paid: string, state: string } | undefined> => {
      const names = existsSync(records) ? readdirSync(records).filter((n) => n.endsWith('.json')) : []
      const all = await Promise.all(names.map(async (n) => JSON.parse(await readFile(join(records, n), 'utf8')) as { leaseId: string, paid: string, state: string }))
      return all.find((r) => BigInt(r.paid) > 0n)
    }
    await vi.waitFor(async () => { expect((await paidRecord()) !== undefined).toBeTruthy() }, { timeout: 20_000 })
    first.child.kill('SIGKILL')
    await new Promise((resolve) => first.child.once('exit', resolve))

    // The daemon comes back on the same address and re-attaches to the job; lease submit, which kept
    // trying meanwhile (saying so), re-attaches too, pays on, sees the end and downloads the artifacts.
    const port = /\/tcp\/(\d+)\//.exec(first.info.addresses[0] ?? '')?.[1] ?? '0'
    const second = await start(first.info.pid, ['--listen', `/ip4/127.0.0.1/tcp/${port}`])
    expect(await submit.exited, submit.stderr()).toBe(0)
    const stderr = submit.stderr()
    expect(stderr).toMatch(/gpumesh: the provider stopped answering \(.+\); re-attaching in \d+\.\d s \(attempt 1, giving up in 120 s\)/)
    expect(stderr).not.toMatch(/\n\s+at /)
    const leaseId = (await paidRecord())?.leaseId ?? ''
    const record = JSON.parse(await readFile(join(records, `${leaseId}.json`), 'utf8')) as { paid: string, state: string, billedMs: number, artifactsDir: string }
    expect(record.state).toBe('completed')
    expect(record.artifactsDir).toBe(join(jobDir, 'gpumesh-out', leaseId))
    const model = JSON.parse(await readFile(join(jobDir, 'gpumesh-out', leaseId, 'output', 'model.json'), 'utf8')) as { steps: number }
    expect(model.steps).toBe(120)
    const ledger = openLedger(join(dataDir, 'ledger.sqlite'))
    try {
      expect(ledger.getLease(leaseId)?.state).toBe('completed')
      expect(ledger.latestVoucher(leaseId)?.cumulativeAmount).toBe(BigInt(record.paid))
    } finally {
      ledger.close()
    }

    // lease fetch downloads them again, whenever the provider still keeps them.
    const fetched = await runCli(['lease', 'fetch', leaseId.slice(0, 12), '--out', join(jobDir, 'again'), '--data-dir', renterDir], { env, timeoutMs: 30_000 })
    expect(fetched.code, fetched.stderr).toBe(0)
    expect(fetched.stdout).toMatch(new RegExp(`^artifacts  ${join(jobDir, 'again', leaseId)} \\(\\d+ files, \\d+ bytes, sha256 [0-9a-f]{12}…\\)\n$`))
    expect(await readFile(join(jobDir, 'again', leaseId, 'output', 'model.json'), 'utf8')).toBe(await readFile(join(jobDir, 'gpumesh-out', leaseId, 'output', 'model.json'), 'utf8'))
    second.child.kill('SIGTERM')
    await new Promise((resolve) => second.child.once('exit', resolve))
  }, 60_000)
})
