/**
 * `gpumesh lease submit` against a real provider (in-process, process runner): what can be checked is
 * checked before ordering — a data directory or output directory it cannot write leases nothing — and a
 * failure after the lease but before the job starts (here: a bundle over the provider's cap) cancels
 * the lease at once, so the provider frees its GPUs instead of holding them to the start deadline.
 * Runs the built CLI (`npx tsc -b` first).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir, type TestProvider } from './provider-helpers.js'
import { startJobProvider } from './jobs-helpers.js'
import { runCli, type CliRun } from './cli-helpers.js'

describe('lease submit checks before ordering and cancels what it cannot use', () => {
  let daemon: TestProvider
  let base: string
  let remove: () => Promise<void>
  const env = (): Record<string, string> => ({ PATH: process.env.PATH ?? '', HOME: base, GPUMESH_PASSWORD: 'pw', GPUMESH_HOME: '' })

  const gpumesh = async (args: string[], cwd = base): Promise<CliRun> => await runCli(args, { env: env(), cwd })

  const jobDir = async (name: string, extra: Record<string, Buffer> = {}): Promise<string> => {
    const dir = join(base, name)
    await mkdir(dir, { recursive: true })
    for (const [file, body] of Object.entries(extra)) await writeFile(join(dir, file), body)
    await writeFile(join(dir, 'job.yaml'), [
      'gpus: { count: 1, classes: [H100-SXM-80GB] }',
      'maxPricePerGpuHour: "4.00"',
      'token: { decimals: 6, chainId: 31337 }',
      'durationSec: 600',
      'command: /bin/sh',
      'args: [-c, "echo done"]',
      `files: [${Object.keys(extra).join(', ')}]`,
      'allowSimulated: true',
      ''
    ].join('\n'))
    return dir
  }
  const provider = (): string => daemon.provider.addresses()[0] ?? ''

  beforeAll(async () => {
    ;({ dir: base, remove } = await tempDir())
    daemon = await startJobProvider()
    const init = await gpumesh(['init', '--role', 'renter', '--data-dir', join(base, 'renter')])
    expect(init.code, init.stderr).toBe(0)
  }, 60_000)
  afterAll(async () => {
    await daemon?.stop()
    await remove?.()
  })

  it('a data directory where lease records cannot be written: one sentence, nothing leased', async () => {
    // The lease records live in <data dir>/renter/leases; a file in the way makes that impossible.
    const dataDir = join(base, 'renter-blocked')
    await gpumesh(['init', '--role', 'renter', '--data-dir', dataDir])
    await writeFile(join(dataDir, 'renter'), 'not a directory')
    const dir = await jobDir('job-a')
    const r = await gpumesh(['lease', 'submit', 'job.yaml', '--provider', provider(), '--data-dir', dataDir], dir)
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`gpumesh: Cannot use the lease records directory ${join(dataDir, 'renter', 'leases')}: a part of that path is a file, not a directory. Choose another path (--data-dir or GPUMESH_HOME). Nothing was leased or paid.\n`)
    expect(daemon.provider.ledger.listLeases()).toEqual([])
  }, 60_000)

  it('an output directory it cannot write: one sentence, nothing leased', async () => {
    const dir = await jobDir('job-b')
    await writeFile(join(base, 'a-file'), '')
    const r = await gpumesh(['lease', 'submit', 'job.yaml', '--provider', provider(), '--data-dir', join(base, 'renter'), '--out', join(base, 'a-file', 'out')], dir)
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`gpumesh: Cannot use the output directory ${join(base, 'a-file', 'out')}: a part of that path is a file, not a directory. Choose another path (--out). Nothing was leased or paid.\n`)
    expect(daemon.provider.ledger.listLeases()).toEqual([])
  }, 60_000)

  it('a job the provider refuses after the lease (bundle over its cap): the lease is cancelled at once and its GPUs are free', async () => {
    const dir = await jobDir('job-c', { 'weights.bin': randomBytes(80 * 1024) })
    const r = await gpumesh(['lease', 'submit', 'job.yaml', '--provider', provider(), '--data-dir', join(base, 'renter')], dir)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/The provider refused the job: .*\(TOO_LARGE\)/)
    const leases = daemon.provider.ledger.listLeases()
    expect(leases).toHaveLength(1)
    expect(r.stderr).toContain(`gpumesh: cancelled lease ${leases[0]?.leaseId ?? ''} at once, so the provider frees its GPUs; nothing was paid\n`)
    expect(leases[0]).toMatchObject({ state: 'terminated' })
    expect(daemon.provider.inventory.gpus().every((g) => g.leaseId === null)).toBe(true)
  }, 60_000)
})
