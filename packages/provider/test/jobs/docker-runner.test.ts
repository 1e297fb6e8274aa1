import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import {
  DockerRunner, NO_NVIDIA_RUNTIME, PullTally, checkDockerReadiness, containerName, dockerRunArgs, imageAllowed, jobPaths, makeJobDirs,
  normalizeBusId, nvidiaProblem, pullQuery, renderNode, type LocalImage, type RunRequest
} from '../../src/jobs/index.js'
import { hex32, tempDir } from './helpers.js'
import { STAND_IN_DOCKER, TEST_IMAGE, containerExists, importBusyboxImage, registryBinary, removeContainers, testEngine } from './docker-helpers.js'
const LEASE = hex32('docker-lease')
const paths = jobPaths('/data/jobs', LEASE)
const request = (over: Partial<RunRequest> = {}): RunRequest => ({
  leaseId: LEASE, paths, gpus: ['GPU-aaa', 'GPU-bbb'], vendor: 'nvidia', maxRunTimeMs: 60_000,
  spec: { command: 'python', args: ['train.py', '--epochs', '3'], env: { WANDB_MODE: 'offline', CUDA_VISIBLE_DEVICES: 'all' }, image: 'pytorch/pytorch:2.4.0', maxRunTimeSec: 60 },
  ...over
})

describe('DockerRunner', () => {
  it('builds the exact docker run command: leased GPUs only, no privileges, no network, limits, mounts, the image by id', () => {
    const args = dockerRunArgs(request(), { memory: '32g', cpus: 8, network: 'none' }, '1000:1000', { image: 'sha256:abc' })
    expect(args).toEqual([
      'run', '--name', containerName(LEASE), '--label', `gpumesh.lease=${LEASE}`, '--init',
      '--gpus', '"device=GPU-aaa,GPU-bbb"',
      '--security-opt', 'no-new-privileges', '--cap-drop', 'ALL', '--network', 'none',
      '--memory', '32g', '--cpus', '8', '--user', '1000:1000',
      '-v', `${paths.work}:/job/work`, '-v', `${paths.output}:/job/output`, '-v', `${paths.checkpoints}:/job/checkpoints`,
      '-w', '/job/work',
      '-e', 'WANDB_MODE=offline',
      '-e', `GPUMESH_LEASE_ID=${LEASE}`, '-e', 'GPUMESH_OUTPUT_DIR=/job/output', '-e', 'GPUMESH_CHECKPOINT_DIR=/job/checkpoints',
      'sha256:abc', 'python', 'train.py', '--epochs', '3'
    ])
    expect(containerName(LEASE)).toMatch(/^gpumesh-[0-9a-f]{24}$/)
  })

  it('omits limits that are not configured and passes the configured network', () => {
    const args = dockerRunArgs(request(), { memory: null, cpus: null, network: 'bridge' })
    expect(args).not.toContain('--memory')
    expect(args).not.toContain('--cpus')
    expect(args.slice(args.indexOf('--network'), args.indexOf('--network') + 2)).toEqual(['--network', 'bridge'])
  })

  it('gives AMD GPUs as their render nodes and /dev/kfd only (no variable to unset), simulated GPUs no device at all', () => {
    const devices = ['/dev/kfd', '/dev/dri/renderD129', '/dev/dri/renderD131']
    const amd = dockerRunArgs(request({ vendor: 'amd' }), { memory: null, cpus: null, network: 'none' }, null, { devices, groups: [44, 993] })
    expect(amd.slice(amd.indexOf('--init') + 1, amd.indexOf('--security-opt'))).toEqual([
      '--device', '/dev/kfd', '--device', '/dev/dri/renderD129', '--device', '/dev/dri/renderD131', '--group-add', '44', '--group-add', '993'
    ])
    expect(amd).not.toContain('/dev/dri')
    expect(amd.some((a) => a.startsWith('ROCR_VISIBLE_DEVICES'))).toBe(false)
    expect(amd).not.toContain('--gpus')
    expect(() => dockerRunArgs(request({ vendor: 'amd' }), { memory: null, cpus: null, network: 'none' })).toThrow(expect.objectContaining({ code: 'RUNNER_FAILED' }))
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
  // same code path (spawning the CLI, its exact arguments, the container's state, docker stop with the
  // grace, docker rm) still runs.
  const engine = testEngine()
  const dir = tempDir()
  const started: string[] = []
  afterAll(() => {
    removeContainers(engine.binary, started)
    rmSync(dir, { recursive: true, force: true })
  })
  it(`runs a job through the docker CLI once its container started, stops it with docker stop, grace first, and removes it (${engine.label})`, async () => {
    const leaseId = hex32(`docker-run-${process.pid}-${Date.now()}`)
    started.push(containerName(leaseId))
    const real = jobPaths(join(dir, 'jobs'), leaseId)
    await makeJobDirs(real)
    const calls = join(tmpdir(), 'gpumesh-stand-in-docker', `${containerName(leaseId)}.calls`)
    rmSync(calls, { force: true })
    const options = { memory: '256m', cpus: 1, network: 'none' as const }
    const runner = new DockerRunner({ ...options, binary: engine.binary, stopGraceMs: 5000, path: process.env.PATH ?? '/usr/bin:/bin' })
    const run: RunRequest = {
      leaseId, paths: real, gpus: [], vendor: 'simulated', maxRunTimeMs: 60_000,
      spec: {
        command: 'sh',
        args: ['-c', 'echo "lease $GPUMESH_LEASE_ID epochs $EPOCHS"; trap "echo checkpointed; exit 0" TERM; while :; do sleep 0.1; done'],
        env: { EPOCHS: '3' }, image: TEST_IMAGE, maxRunTimeSec: 60
      }
    }
    const job = await runner.start(run)
    expect(job.image).toEqual({ reference: TEST_IMAGE, id: engine.imageId, repoDigest: null })
    expect(containerExists(engine.binary, containerName(leaseId))).toBe(true)
    await vi.waitFor(() => { expect(readFileSync(real.stdoutLog, 'utf8')).toContain(`lease ${leaseId} epochs 3`) }, { timeout: 30_000 })
    const exit = await job.stop(5000)
    expect(exit).toEqual({ exitCode: 0, signal: null, cause: 'stopped' })
    expect(readFileSync(real.stdoutLog, 'utf8')).toContain('checkpointed')
    expect(containerExists(engine.binary, containerName(leaseId))).toBe(false)
    if (!engine.real) {
      const said = readFileSync(calls, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[])
      expect(said).toEqual([
        ['rm', '-f', containerName(leaseId)],
        dockerRunArgs(run, options, `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`, { image: engine.imageId }),
        ['stop', '-t', '5', containerName(leaseId)],
        ['rm', '-f', containerName(leaseId)]
      ])
    }
  }, 120_000)

  it(`refuses a missing image IMAGE_UNAVAILABLE and a failing runtime RUNNER_FAILED, leaving no container (${engine.label})`, async () => {
    const runner = new DockerRunner({ memory: null, cpus: null, network: 'none', binary: engine.binary, stopGraceMs: 1000, path: process.env.PATH ?? '/usr/bin:/bin' })
    const leaseId = hex32(`docker-refused-${process.pid}-${Date.now()}`)
    started.push(containerName(leaseId))
    const real = jobPaths(join(dir, 'jobs'), leaseId)
    await makeJobDirs(real)
    const run: RunRequest = {
      leaseId, paths: real, gpus: ['GPU-aaa'], vendor: 'nvidia', maxRunTimeMs: 60_000,
      spec: { command: 'true', args: [], env: {}, image: 'gpumesh-test/absent:1', maxRunTimeSec: 60 }
    }
    await expect(runner.start(run)).rejects.toMatchObject({ name: 'JobError', code: 'IMAGE_UNAVAILABLE', message: expect.stringContaining('gpumesh-test/absent:1 is not on this provider') })
    const allowOnly = new DockerRunner({ memory: null, cpus: null, network: 'none', binary: engine.binary, stopGraceMs: 1000, allowImages: ['other:1'] })
    await expect(allowOnly.start({ ...run, spec: { ...run.spec, image: TEST_IMAGE } })).rejects.toMatchObject({ code: 'IMAGE_UNAVAILABLE', message: expect.stringContaining('runner.docker.allowImages') })
    // NVIDIA GPUs on an engine without the NVIDIA runtime: docker run exits 125 before the container ran.
    await expect(runner.start({ ...run, spec: { ...run.spec, image: TEST_IMAGE } })).rejects.toMatchObject({
      name: 'JobError', code: 'RUNNER_FAILED', message: expect.stringMatching(/^docker run failed before the container started \(exit 125\): .*could not select device driver/)
    })
    expect(containerExists(engine.binary, containerName(leaseId))).toBe(false)
  }, 60_000)
})

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => { server.close(resolve) })
  return port
}

// Pulls need a registry: Debian's docker-registry on 127.0.0.1 (which docker trusts without TLS) with a
// real engine. Without them, what is left to check is that a pull that cannot happen is refused.
const pullEngine = testEngine()
const registry = pullEngine.real ? registryBinary() : null
describe(`pulls of allowed images (${registry === null ? `no registry: ${pullEngine.real ? 'docker-registry is not installed' : pullEngine.label}` : `${pullEngine.label}, local registry`})`, () => {
  const dir = tempDir('gpumesh-registry-')
  let child: ChildProcess | null = null
  let reference = ''
  const started: string[] = []
  afterAll(() => {
    child?.kill('SIGKILL')
    removeContainers(pullEngine.binary, started)
    if (reference !== '') spawnSync(pullEngine.binary, ['rmi', '-f', reference], { stdio: 'ignore' })
    rmSync(dir, { recursive: true, force: true })
  })

  const job = async (name: string, image: string): Promise<RunRequest> => {
    const leaseId = hex32(`${name}-${process.pid}-${Date.now()}`)
    started.push(containerName(leaseId))
    const paths = jobPaths(join(dir, 'jobs'), leaseId)
    await makeJobDirs(paths)
    return { leaseId, paths, gpus: [], vendor: 'simulated', maxRunTimeMs: 60_000, spec: { command: 'sh', args: ['-c', 'cat /etc/marker'], env: {}, image, maxRunTimeSec: 60 } }
  }

  if (registry === null) {
    it('refuses a job whose allowed image cannot be pulled IMAGE_UNAVAILABLE, saying why', async () => {
      const runner = new DockerRunner({
        memory: null, cpus: null, network: 'none', binary: pullEngine.binary, stopGraceMs: 1000,
        allowImages: ['gpumesh-pull/absent:1'], pull: { timeoutMs: 5000, maxBytes: 1024 }, socketPath: join(dir, 'no-engine.sock')
      })
      const progress: string[] = []
      await expect(runner.start({ ...await job('pull-none', 'gpumesh-pull/absent:1'), progress: (t) => { progress.push(t) } }))
        .rejects.toMatchObject({ code: 'IMAGE_UNAVAILABLE', message: expect.stringContaining('cannot reach the docker engine') })
      expect(progress).toEqual(['pulling gpumesh-pull/absent:1'])
    })
    return
  }

  it('pulls an allowed image within the limits, with progress, and runs it by digest; refuses one over the size cap', async () => {
    const port = await freePort()
    writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:${port}\n`)
    child = spawn(registry, ['serve', join(dir, 'config.yml')], { stdio: 'ignore' })
    await vi.waitFor(async () => { expect((await fetch(`http://127.0.0.1:${port}/v2/`)).ok, 'the registry did not answer').toBe(true) }, { timeout: 20_000, interval: 100 })
    // An image of its own (a marker in its layer), pushed, then removed here: only the registry has it.
    reference = `127.0.0.1:${port}/gpumesh-pull/job:1`
    const marker = `marker ${process.pid} ${Date.now()}`
    importBusyboxImage(pullEngine.binary, reference, marker)
    const pushed = spawnSync(pullEngine.binary, ['push', reference], { encoding: 'utf8', timeout: 60_000 })
    expect(pushed.status, pushed.stderr).toBe(0)
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)?.[1]
    expect(spawnSync(pullEngine.binary, ['rmi', reference]).status).toBe(0)

    const options = { memory: null, cpus: null, network: 'none' as const, binary: pullEngine.binary, stopGraceMs: 1000, allowImages: [reference] }
    const tiny = new DockerRunner({ ...options, pull: { timeoutMs: 60_000, maxBytes: 1024 } })
    await expect(tiny.start(await job('pull-tiny', reference))).rejects.toMatchObject({ code: 'IMAGE_UNAVAILABLE', message: expect.stringContaining('larger than this provider pulls') })

    const runner = new DockerRunner({ ...options, pull: { timeoutMs: 60_000, maxBytes: 64 * 1024 * 1024 } })
    const progress: string[] = []
    const request = await job('pull-ok', reference)
    const running = await runner.start({ ...request, progress: (t) => { progress.push(t) } })
    expect(await running.exited).toMatchObject({ exitCode: 0 })
    expect(readFileSync(request.paths.stdoutLog, 'utf8')).toBe(marker)
    expect(progress[0]).toBe(`pulling ${reference}`)
    expect(progress.some((t) => /^pulling .+: \d+\.\d of \d+\.\d MiB \(1 layers\)$/.test(t))).toBe(true)
    expect(progress.at(-1)).toMatch(new RegExp(`^pulled ${reference.replace(/[.]/g, '\\.')}: \\d+\\.\\d MiB$`))
    expect(running.image).toMatchObject({ reference, repoDigest: `127.0.0.1:${port}/gpumesh-pull/job@${digest ?? ''}` })
  }, 120_000)
})

describe('docker engine checks', () => {
  const image = (over: Partial<LocalImage> = {}): LocalImage => ({ id: 'sha256:' + 'a'.repeat(64), repoTags: ['pytorch/pytorch:2.4.0'], repoDigests: ['pytorch/pytorch@sha256:' + 'b'.repeat(64)], sizeBytes: 1, ...over })

  it('allows any present image by default, and by name, tag, repo digest or digest alone when listed', () => {
    expect(imageAllowed(null, 'pytorch/pytorch:2.4.0', image())).toBe(true)
    expect(imageAllowed(null, 'pytorch/pytorch:2.4.0', null)).toBe(false)
    expect(imageAllowed(['pytorch/pytorch:2.4.0'], 'pytorch/pytorch:2.4.0', image())).toBe(true)
    expect(imageAllowed(['sha256:' + 'b'.repeat(64)], 'pytorch/pytorch:2.4.0', image())).toBe(true)
    expect(imageAllowed(['pytorch/pytorch@sha256:' + 'b'.repeat(64)], 'pytorch/pytorch:2.4.0', image())).toBe(true)
    expect(imageAllowed(['sha256:' + 'a'.repeat(64)], 'sha256:' + 'a'.repeat(64), image())).toBe(true)
    expect(imageAllowed(['busybox'], 'busybox', null)).toBe(true)
    expect(imageAllowed(['busybox'], 'busybox:latest', image({ repoTags: ['busybox:latest'] }))).toBe(true)
    expect(imageAllowed(['pytorch/pytorch:2.5.0'], 'pytorch/pytorch:2.4.0', image())).toBe(false)
    expect(imageAllowed(['sha256:' + 'c'.repeat(64)], 'pytorch/pytorch:2.4.0', image())).toBe(false)
  })

  it('finds the NVIDIA runtime by runtime name, CDI device or the container hook, and says what to install', () => {
    expect(nvidiaProblem({ Runtimes: { runc: {} } }, false)).toBe(NO_NVIDIA_RUNTIME)
    expect(NO_NVIDIA_RUNTIME).toMatch(/^docker has no NVIDIA runtime: install nvidia-container-toolkit/)
    expect(nvidiaProblem({ Runtimes: { runc: {}, nvidia: {} } }, false)).toBeNull()
    expect(nvidiaProblem({ Runtimes: { runc: {} }, DiscoveredDevices: [{ Source: 'cdi', ID: 'nvidia.com/gpu=0' }] }, false)).toBeNull()
    expect(nvidiaProblem({ Runtimes: { runc: {} } }, true)).toBeNull()
  })

  it('finds an AMD GPU\'s render node from its PCI address in sysfs', async () => {
    const root = tempDir('gpumesh-sysfs-')
    try {
      mkdirSync(join(root, 'sys/bus/pci/devices/0000:c3:00.0/drm/card1'), { recursive: true })
      mkdirSync(join(root, 'sys/bus/pci/devices/0000:c3:00.0/drm/renderD129'), { recursive: true })
      mkdirSync(join(root, 'dev/dri'), { recursive: true })
      writeFileSync(join(root, 'dev/dri/renderD129'), '')
      writeFileSync(join(root, 'dev/kfd'), '')
      const host = { sysRoot: join(root, 'sys'), devRoot: join(root, 'dev') }
      expect(await renderNode({ uuid: 'GPU-amd-0', pciBusId: '0000:C3:00.0' }, host)).toBe(join(root, 'dev/dri/renderD129'))
      expect(normalizeBusId('00000000:C3:00.0')).toBe('0000:c3:00.0')
      expect(normalizeBusId('c3:00.0')).toBe('0000:c3:00.0')
      await expect(renderNode({ uuid: 'GPU-amd-1', pciBusId: '0000:c4:00.0' }, host)).rejects.toMatchObject({ code: 'RUNNER_FAILED', message: expect.stringContaining('GPU-amd-1') })
      await expect(renderNode({ uuid: 'GPU-amd-2', pciBusId: null }, host)).rejects.toMatchObject({ code: 'RUNNER_FAILED' })
      // The start check: the engine answers (the stand-in), /dev/kfd is there, one GPU has no render node.
      const cli = { binary: STAND_IN_DOCKER, path: process.env.PATH ?? '/usr/bin:/bin' }
      const amd = await checkDockerReadiness(cli, [{ uuid: 'GPU-amd-0', vendor: 'amd', pciBusId: '0000:c3:00.0' }], host)
      expect(amd).toEqual({ serverVersion: 'stand-in', engine: null, vendors: {} })
      const missing = await checkDockerReadiness(cli, [{ uuid: 'GPU-amd-1', vendor: 'amd', pciBusId: '0000:c4:00.0' }], host)
      expect(missing.vendors.amd).toContain('GPU-amd-1')
      rmSync(join(root, 'dev/kfd'))
      expect((await checkDockerReadiness(cli, [{ uuid: 'GPU-amd-0', vendor: 'amd', pciBusId: '0000:c3:00.0' }], host)).vendors.amd).toMatch(/kfd is missing/)
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('says the engine is unreachable, or that it lacks the NVIDIA runtime; simulated GPUs need only the engine', async () => {
    const down = await checkDockerReadiness({ binary: '/bin/false', path: '/usr/bin:/bin' }, [{ uuid: 'GPU-sim-0', vendor: 'simulated', pciBusId: null }])
    expect(down).toMatchObject({ serverVersion: null, engine: expect.stringMatching(/^docker engine not reachable .*start dockerd/) })
    const absent = await checkDockerReadiness({ binary: '/nonexistent/docker', path: '/usr/bin:/bin' }, [])
    expect(absent.engine).toMatch(/cannot be run: install docker or set runner.docker.binary/)
    const cli = { binary: STAND_IN_DOCKER, path: process.env.PATH ?? '/usr/bin:/bin' }
    const nvidia = await checkDockerReadiness(cli, [{ uuid: 'GPU-a', vendor: 'nvidia', pciBusId: null }], { hookPaths: [] })
    expect(nvidia).toEqual({ serverVersion: 'stand-in', engine: null, vendors: { nvidia: NO_NVIDIA_RUNTIME } })
    expect(await checkDockerReadiness(cli, [{ uuid: 'GPU-sim-0', vendor: 'simulated', pciBusId: null }])).toEqual({ serverVersion: 'stand-in', engine: null, vendors: {} })
  })

  it('tallies a pull\'s progress: bytes announced and downloaded per layer', () => {
    const tally = new PullTally()
    tally.add({ status: 'Pulling from library/busybox', id: 'latest' })
    tally.add({ status: 'Pulling fs layer', id: 'l1', progressDetail: {} })
    tally.add({ status: 'Downloading', id: 'l1', progressDetail: { current: 1000, total: 5000 } })
    tally.add({ status: 'Downloading', id: 'l2', progressDetail: { current: 10, total: 300 } })
    tally.add({ status: 'Downloading', id: 'l1', progressDetail: { current: 4000, total: 5000 } })
    expect({ announced: tally.announcedBytes, downloaded: tally.downloadedBytes, layers: tally.layers }).toEqual({ announced: 5300, downloaded: 4010, layers: 2 })
    tally.add({ status: 'Download complete', id: 'l1', progressDetail: {} })
    tally.add({ status: 'Extracting', id: 'l1', progressDetail: { current: 9_999_999, total: 9_999_999 } })
    expect(tally.downloadedBytes).toBe(5010)
    expect(pullQuery('busybox')).toBe('fromImage=busybox&tag=latest')
    expect(pullQuery('127.0.0.1:5000/team/img:2')).toBe('fromImage=127.0.0.1%3A5000%2Fteam%2Fimg&tag=2')
    expect(pullQuery('img@sha256:abc')).toBe('fromImage=img%40sha256%3Aabc')
  })
})
