/**
 * kill -9 of a real `gpumesh provider start` in the middle of a paid job, then a restart: the ledger's
 * usage periods and vouchers are intact, the lease is closed (re-attached and then ended), and what is
 * billed is at most what the job really ran, plus one sample. Runs the built CLI (`npx tsc -b` first).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import type { GpumeshNode } from '@gpumesh/net'
import { submitJob } from '@gpumesh/renter'
import { startClient, tempDir, until } from './provider-helpers.js'
import { clientOptions, leaseFrom, trainSpec, trainingBundle } from './jobs-helpers.js'

const run = promisify(execFile)
const CLI = fileURLToPath(new URL('../packages/cli/bin/gpumesh.js', import.meta.url))
const PASSWORD = 'correct horse battery staple'
/** The meter samples every second at a 1 s billing interval. */
const SAMPLE_MS = 1000

interface ProviderJson { pid: number, peerId: string, addresses: string[] }

describe('kill -9 of the daemon during a job', () => {
  let dataDir: string
  let remove: () => Promise<void>
  let client: GpumeshNode
  const children: ChildProcess[] = []
  const env = { ...process.env, GPUMESH_PASSWORD: PASSWORD, GPUMESH_HOME: '' }

  const start = async (previousPid: number | null): Promise<{ child: ChildProcess, info: ProviderJson }> => {
    const child = spawn(process.execPath, [CLI, 'provider', 'start', '--data-dir', dataDir, '--log-level', 'warn'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let output = ''
    child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
    const file = join(dataDir, 'provider.json')
    await until(async () => {
      if (child.exitCode != null) throw new Error(`provider exited ${child.exitCode}: ${output}`)
      if (!existsSync(file)) return false
      const info = JSON.parse(await readFile(file, 'utf8')) as ProviderJson
      return info.pid !== previousPid && output.includes('running')
    }, 20_000)
    return { child, info: JSON.parse(await readFile(file, 'utf8')) as ProviderJson }
  }

  beforeAll(async () => {
    ;({ dir: dataDir, remove } = await tempDir())
    await run(process.execPath, [CLI, 'init', '--data-dir', dataDir], { env, timeout: 20_000 })
    await writeFile(join(dataDir, 'config.yaml'), [
      'probe:',
      '  simulate: [{ model: H100-SXM-80GB, count: 2 }]',
      'network:',
      '  listen: [/ip4/127.0.0.1/tcp/0]',
      '  mdns: false',
      'api:',
      '  port: 0',
      'pricing:',
      '  perGpuHour: { H100-SXM-80GB: "2.00" }',
      'billing:',
      '  intervalSec: 1',
      '  paymentGraceSec: 2',
      'runner:',
      '  kind: process',
      '  stopGraceSec: 2',
      ''
    ].join('\n'))
    client = await startClient()
  })

  afterAll(async () => {
    for (const child of children) if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
    await client?.stop()
    await remove?.()
  })

  it('keeps periods and vouchers, closes the lease, and bills no more than the job ran', async () => {
    const first = await start(null)
    const wallet = Wallet.createRandom()
    const bundle = await trainingBundle()
    const terms = await leaseFrom(client, first.info.addresses, wallet, bundle.sha256)

    let usage = 0
    const vouchersSent: bigint[] = []
    const job = submitJob({
      ...clientOptions(client, wallet, terms),
      // ~6 s of training; the daemon dies about 2.5 s in.
      spec: trainSpec(60, 100),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { if (e.kind === 'usage') usage++ },
      onVoucher: (v) => { vouchersSent.push(v.cumulativeAmount) }
    }).catch((err: unknown) => err)
    await until(() => usage >= 2 && vouchersSent.length >= 2, 15_000)
    await new Promise((resolve) => setTimeout(resolve, 300)) // let the last voucher land
    first.child.kill('SIGKILL')
    await new Promise((resolve) => first.child.once('exit', resolve))
    expect(await job).toMatchObject({ name: 'JobClientError' })

    const second = await start(first.info.pid)
    // Re-attached, the job runs on; unpaid now (nobody re-attached the renter) it is stopped, or it completes.
    await until(async () => {
      const ledger = openLedger(join(dataDir, 'ledger.sqlite'))
      try {
        const state = ledger.getLease(terms.leaseId)?.state
        return state === 'completed' || state === 'terminated' || state === 'failed'
      } finally {
        ledger.close()
      }
    }, 15_000)
    second.child.kill('SIGTERM')
    expect(await new Promise((resolve) => second.child.once('exit', resolve))).toBe(0)

    const ledger = openLedger(join(dataDir, 'ledger.sqlite'))
    try {
      const lease = ledger.getLease(terms.leaseId)
      // The job outlived the daemon, so the restarted one re-attached to it: it ended by itself or unpaid, never JOB_LOST.
      expect(lease?.stateReason).toMatch(/^(EXIT_0|UNPAID)$/)
      const periods = ledger.usagePeriods(terms.leaseId)
      // Periods tile the run without a gap or an overlap, across the crash; the last is final.
      periods.forEach((p, i) => {
        expect(p.periodIndex).toBe(i)
        expect(p.startOffsetMs).toBe(i === 0 ? 0 : periods[i - 1]?.endOffsetMs)
      })
      expect(periods.at(-1)?.final).toBe(true)
      // Every voucher the renter sent before the crash is there.
      const stored = ledger.vouchers(terms.leaseId).map((v) => v.cumulativeAmount)
      expect(stored.slice(0, vouchersSent.length)).toEqual(vouchersSent)
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
})
