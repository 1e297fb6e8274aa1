import { readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { JobSpec } from '@gpumesh/protocol'
import { ProcessRunner, isSameProcessAlive, jobPaths, makeJobDirs, readExitCodeFile, readProcessStat, type JobPaths, type RunningJob } from '../../src/jobs/index.js'
import { FIXTURES, hex32, tempDir } from './helpers.js'

const LEASE = hex32('process-runner')
const spec = (script: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  command: process.execPath, args: [join(FIXTURES, script)], env: {}, image: null, maxRunTimeSec: 60, ...extra
})

describe('ProcessRunner (real child processes)', () => {
  let dir: string
  let paths: JobPaths
  const started: RunningJob[] = []
  const runner = new ProcessRunner({ stopGraceMs: 300, path: process.env.PATH ?? '/usr/bin:/bin', livenessPollMs: 50 })

  beforeEach(async () => {
    dir = tempDir()
    paths = jobPaths(join(dir, 'jobs'), LEASE)
    await makeJobDirs(paths)
  })
  afterEach(async () => {
    await Promise.all(started.splice(0).map(async (j) => await j.stop(0)))
    rmSync(dir, { recursive: true, force: true })
  })

  async function run (s: JobSpec, maxRunTimeMs = 60_000): Promise<RunningJob> {
    const job = await runner.start({ leaseId: LEASE, paths, gpus: ['GPU-aaa', 'GPU-bbb'], vendor: 'nvidia', spec: s, maxRunTimeMs })
    started.push(job)
    return job
  }

  it('reports the exit code of jobs that end at once, even when they are gone before their start is read', async () => {
    // Node reaps a child as soon as it exits; a job that fails at once can be gone before /proc is read.
    const jobs = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const p = jobPaths(join(dir, 'jobs'), hex32(`at-once-${i}`))
      await makeJobDirs(p)
      return await runner.start({ leaseId: hex32(`at-once-${i}`), paths: p, gpus: [], vendor: 'simulated', spec: { command: '/bin/sh', args: ['-c', `exit ${i % 5 + 1}`], env: {}, image: null, maxRunTimeSec: 60 }, maxRunTimeMs: 60_000 })
    }))
    const exits = await Promise.all(jobs.map(async (j) => await j.exited))
    expect(exits.map((e) => e.exitCode)).toEqual(Array.from({ length: 30 }, (_, i) => i % 5 + 1))
  })

  it('gives the job only its GPUs, its directories and none of the daemon environment', async () => {
    process.env.SECRET = 'daemon-secret'
    try {
      const job = await run(spec('env.mjs', { env: { RENTER_VAR: 'x', CUDA_VISIBLE_DEVICES: 'all', GPUMESH_LEASE_ID: 'forged' } }))
      expect(await job.exited).toEqual({ exitCode: 0, signal: null, cause: 'exit' })
    } finally {
      delete process.env.SECRET
    }
    const seen = JSON.parse(readFileSync(paths.stdoutLog, 'utf8').trim()) as Record<string, unknown>
    expect(seen).toMatchObject({
      CUDA_VISIBLE_DEVICES: 'GPU-aaa,GPU-bbb', ROCR_VISIBLE_DEVICES: null, GPUMESH_LEASE_ID: LEASE,
      GPUMESH_OUTPUT_DIR: paths.output, GPUMESH_CHECKPOINT_DIR: paths.checkpoints, SECRET: null, RENTER_VAR: 'x', cwd: paths.work
    })
    expect(readFileSync(paths.exitCodeFile, 'utf8').trim()).toBe('0')
  })

  it('runs the job in its own process group and records its start time', async () => {
    const job = await run(spec('sleep.mjs'))
    const stat = await readProcessStat(job.pid)
    expect(stat?.startTime).toBe(job.pidStartTime)
    expect(await isSameProcessAlive(job.pid, job.pidStartTime)).toBe(true)
    expect(await isSameProcessAlive(job.pid, job.pidStartTime + 1)).toBe(false)
    const exit = await job.stop()
    expect(exit.cause).toBe('stopped')
    expect(await isSameProcessAlive(job.pid, job.pidStartTime)).toBe(false)
  })

  it('lets a job that traps SIGTERM write its checkpoint within the grace', async () => {
    const job = await run(spec('trap-term.mjs'))
    await vi.waitFor(() => { expect(readFileSync(paths.stdoutLog, 'utf8')).toContain('ready') }, { timeout: 5000 })
    const exit = await job.stop(5_000)
    expect(exit).toEqual({ exitCode: 0, signal: null, cause: 'stopped' })
    expect(JSON.parse(readFileSync(join(paths.checkpoints, 'on-term.json'), 'utf8'))).toEqual({ step: 42 })
  })

  it('SIGKILLs the whole group, grandchild included, after the grace when SIGTERM is ignored', async () => {
    const job = await run(spec('ignore-term.mjs'))
    const pidFile = join(paths.output, 'grandchild.pid')
    await vi.waitFor(() => { expect(existsSync(pidFile) && readFileSync(paths.stdoutLog, 'utf8').includes('ready')).toBeTruthy() }, { timeout: 5000 })
    const grandchild = Number(readFileSync(pidFile, 'utf8'))
    const grandStart = (await readProcessStat(grandchild))?.startTime ?? -1
    const t0 = Date.now()
    const exit = await job.stop(400)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350)
    expect(exit.signal).toBe('SIGKILL')
    expect(exit.exitCode).toBeNull()
    await vi.waitFor(async () => { expect(await isSameProcessAlive(grandchild, grandStart)).toBeFalsy() }, { timeout: 2000 })
    expect(readFileSync(paths.stdoutLog, 'utf8')).toContain('ignoring SIGTERM')
  })

  it('enforces the maximum run time', async () => {
    const t0 = Date.now()
    const job = await run(spec('sleep.mjs'), 300)
    const exit = await job.exited
    expect(exit.cause).toBe('max-runtime')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290)
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it('re-attaches by pid and start time, and sees the job end', async () => {
    const job = await run(spec('trap-term.mjs'))
    const attached = await runner.attach({ leaseId: LEASE, pid: job.pid, pidStartTime: job.pidStartTime, paths })
    expect(attached).not.toBeNull()
    expect(await runner.attach({ leaseId: LEASE, pid: job.pid, pidStartTime: job.pidStartTime - 1, paths })).toBeNull()
    await vi.waitFor(() => { expect(readFileSync(paths.stdoutLog, 'utf8')).toContain('ready') }, { timeout: 5000 })
    const exit = await attached?.stop(5_000)
    expect(exit?.exitCode).toBe(0) // read from the wrapper's exit-code file
  })
})

describe('readExitCodeFile', () => {
  it('reads the status the wrapper wrote; an empty (not yet written), absent, garbage or huge file says nothing', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'exit-code')
      expect(await readExitCodeFile(file)).toBeNull()
      writeFileSync(file, '')
      expect(await readExitCodeFile(file)).toBeNull() // not 0: a job killed before its wrapper wrote did not succeed
      writeFileSync(file, '3\n')
      expect(await readExitCodeFile(file)).toBe(3)
      writeFileSync(file, '0x10\n')
      expect(await readExitCodeFile(file)).toBeNull()
      writeFileSync(file, '1'.repeat(1 << 20))
      expect(await readExitCodeFile(file)).toBeNull()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
