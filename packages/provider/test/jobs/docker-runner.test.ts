import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { DockerRunner, containerName, dockerRunArgs, jobPaths, makeJobDirs, type RunRequest } from '../../src/jobs/index.js'
import { hex32, tempDir } from './helpers.js'

const STAND_IN = fileURLToPath(new URL('../fixtures/bin/docker', import.meta.url))

async function until (check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const LEASE = hex32('docker-lease')
const paths = jobPaths('/data/jobs', LEASE)
const request = (over: Partial<RunRequest> = {}): RunRequest => ({
  leaseId: LEASE, paths, gpus: ['GPU-aaa', 'GPU-bbb'], vendor: 'nvidia', maxRunTimeMs: 60_000,
  spec: { command: 'python', args: ['train.py', '--epochs', '3'], env: { WANDB_MODE: 'offline', CUDA_VISIBLE_DEVICES: 'all' }, image: 'pytorch/pytorch:2.4.0', maxRunTimeSec: 60 },
  ...over
})

function dockerEngine (): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 })
    return true
  } catch {
    return false
  }
}

describe('DockerRunner', () => {
  it('builds the exact docker run command: leased GPUs only, no privileges, no network, limits, mounts', () => {
    const args = dockerRunArgs(request(), { memory: '32g', cpus: 8, network: 'none' }, '1000:1000')
    expect(args).toEqual([
      'run', '--rm', '--name', containerName(LEASE), '--init',
      '--gpus', '"device=GPU-aaa,GPU-bbb"',
      '--security-opt', 'no-new-privileges', '--cap-drop', 'ALL', '--network', 'none',
      '--memory', '32g', '--cpus', '8', '--user', '1000:1000',
      '-v', `${paths.work}:/job/work`, '-v', `${paths.output}:/job/output`, '-v', `${paths.checkpoints}:/job/checkpoints`,
      '-w', '/job/work',
      '-e', 'WANDB_MODE=offline',
      '-e', `GPUMESH_LEASE_ID=${LEASE}`, '-e', 'GPUMESH_OUTPUT_DIR=/job/output', '-e', 'GPUMESH_CHECKPOINT_DIR=/job/checkpoints',
      'pytorch/pytorch:2.4.0', 'python', 'train.py', '--epochs', '3'
    ])
    expect(containerName(LEASE)).toMatch(/^gpumesh-[0-9a-f]{24}$/)
  })

  it('omits limits that are not configured and passes the configured network', () => {
    const args = dockerRunArgs(request(), { memory: null, cpus: null, network: 'bridge' })
    expect(args).not.toContain('--memory')
    expect(args).not.toContain('--cpus')
    expect(args.slice(args.indexOf('--network'), args.indexOf('--network') + 2)).toEqual(['--network', 'bridge'])
  })

  it('gives AMD GPUs through ROCR_VISIBLE_DEVICES and simulated GPUs no device at all', () => {
    const amd = dockerRunArgs(request({ vendor: 'amd' }), { memory: null, cpus: null, network: 'none' })
    expect(amd).toContain('ROCR_VISIBLE_DEVICES=GPU-aaa,GPU-bbb')
    expect(amd).not.toContain('--gpus')
    const sim = dockerRunArgs(request({ vendor: 'simulated' }), { memory: null, cpus: null, network: 'none' })
    expect(sim).not.toContain('--gpus')
    expect(sim).not.toContain('--device')
  })

  it('refuses a spec without an image', () => {
    const r = request()
    expect(() => dockerRunArgs({ ...r, spec: { ...r.spec, image: null } }, { memory: null, cpus: null, network: 'none' }))
      .toThrow(expect.objectContaining({ code: 'BAD_SPEC' }))
  })

  // A real engine where `docker info` works; elsewhere the stand-in docker CLI in fixtures/bin, so the
  // same code path (spawning the CLI, its exact arguments, docker stop with the grace) still runs.
  const engine = dockerEngine()
  const dir = tempDir()
  afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
  it(`runs a job through the docker CLI and stops it with docker stop, grace first (${engine ? 'real engine' : 'stand-in docker'})`, async () => {
    const leaseId = hex32(`docker-run-${process.pid}-${Date.now()}`)
    const real = jobPaths(join(dir, 'jobs'), leaseId)
    await makeJobDirs(real)
    const calls = join(tmpdir(), 'gpumesh-stand-in-docker', `${containerName(leaseId)}.calls`)
    rmSync(calls, { force: true })
    const options = { memory: '256m', cpus: 1, network: 'none' as const }
    const runner = new DockerRunner({ ...options, binary: engine ? 'docker' : STAND_IN, stopGraceMs: 5000, path: process.env.PATH ?? '/usr/bin:/bin' })
    const run: RunRequest = {
      leaseId, paths: real, gpus: [], vendor: 'simulated', maxRunTimeMs: 60_000,
      spec: {
        command: 'sh',
        args: ['-c', 'echo "lease $GPUMESH_LEASE_ID epochs $EPOCHS"; trap "echo checkpointed; exit 0" TERM; while :; do sleep 0.1; done'],
        env: { EPOCHS: '3' }, image: 'busybox', maxRunTimeSec: 60
      }
    }
    const job = await runner.start(run)
    await until(() => readFileSync(real.stdoutLog, 'utf8').includes(`lease ${leaseId} epochs 3`))
    const exit = await job.stop(5000)
    expect(exit).toEqual({ exitCode: 0, signal: null, cause: 'stopped' })
    expect(readFileSync(real.stdoutLog, 'utf8')).toContain('checkpointed')
    if (!engine) {
      const said = readFileSync(calls, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[])
      expect(said).toEqual([
        dockerRunArgs(run, options, `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`),
        ['stop', '-t', '5', containerName(leaseId)]
      ])
    }
  }, 120_000)
})
