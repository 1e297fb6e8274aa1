/**
 * The docker runner on a real engine (Debian's docker.io; `.ci/run` starts dockerd when it can), with a
 * busybox image made by `docker import`. Where no engine answers, the same scenarios run against the
 * stand-in docker CLI (packages/provider/test/fixtures/bin/docker), and every title says which and why.
 *
 * A provider daemon with `runner.kind: docker` runs a renter's job in a container: its logs stream as
 * events, its output comes back as artifacts, billing starts when the container started, and the image
 * is recorded with the lease by id. A stop is SIGTERM, the grace, then the kill. A missing image is
 * refused IMAGE_UNAVAILABLE and a GPU runtime the engine lacks RUNNER_FAILED, both unbilled. Then a
 * `kill -9` of a real `gpumesh provider start` mid-job: the restarted daemon re-attaches to the
 * container and the renter gets every line once. Containers the tests start are removed.
 */
import { spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { Wallet, type BaseWallet } from 'ethers'
import { create, list } from 'tar'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import type { GpumeshNode } from '@gpumesh/net'
import type { Bytes32, JobEvent, JobSpec, LeaseTerms } from '@gpumesh/protocol'
import { attachJob, submitJob } from '@gpumesh/renter'
import { containerName } from '@gpumesh/provider'
import { StandInProber, simulatedGpu, startClient, startProvider, tempDir, type TestProvider } from './provider-helpers.js'
import { clientOptions, leaseFrom } from './jobs-helpers.js'
import { daemonConfig, initDaemonDir, killChildren, runCli, spawnDaemon, type ProviderJson, type SpawnedDaemon } from './cli-helpers.js'
import { TEST_IMAGE, containerExists, removeContainers, testEngine } from '../packages/provider/test/jobs/docker-helpers.js'

const PASSWORD = 'correct horse battery staple'
const engine = testEngine()
const PATH = `${process.env.PATH ?? ''}:/usr/local/bin:/usr/bin:/bin`

/**
 * The job: prints `step i` every STEP_SEC for STEPS steps (or until a file `stop` appears in its working
 * directory), writes its result to the output directory, and on SIGTERM writes a checkpoint and exits 0 (what a training job does with the grace).
 */
const JOB_SH = [
  'trap \'echo checkpointed; echo "stopped at $i" > "$GPUMESH_CHECKPOINT_DIR/ckpt-final"; exit 0\' TERM',
  'echo "job $GPUMESH_LEASE_ID as $(id -u)"',
  'i=0',
  'while [ "$i" -lt "$STEPS" ] && [ ! -e stop ]; do i=$((i + 1)); echo "step $i"; sleep "$STEP_SEC"; done',
  'echo "result after $i steps" > "$GPUMESH_OUTPUT_DIR/result.txt"',
  'echo done',
  ''
].join('\n')

async function jobBundle (dir: string): Promise<{ bytes: Buffer, sha256: Bytes32 }> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'job.sh'), JOB_SH)
  const chunks: Buffer[] = []
  for await (const chunk of create({ gzip: true, cwd: dir, portable: true }, ['job.sh']) as AsyncIterable<Buffer>) chunks.push(chunk)
  const bytes = Buffer.concat(chunks)
  return { bytes, sha256: `0x${createHash('sha256').update(bytes).digest('hex')}` }
}

/**
 * A new renter's lease on the daemon at `addresses` for the job bundle made in `dir`; its id goes to
 * `leases`, whose containers the suite removes.
 */
async function leaseForJob (client: GpumeshNode, addresses: string[], dir: string, leases: string[]): Promise<{ wallet: BaseWallet, bundle: { bytes: Buffer, sha256: Bytes32 }, terms: LeaseTerms }> {
  const wallet = Wallet.createRandom()
  const bundle = await jobBundle(dir)
  const terms = await leaseFrom(client, addresses, wallet, bundle.sha256)
  leases.push(terms.leaseId)
  return { wallet, bundle, terms }
}

const jobSpec = (steps: number, stepSec: number, image: string = TEST_IMAGE): JobSpec =>
  ({ command: 'sh', args: ['job.sh'], env: { STEPS: String(steps), STEP_SEC: String(stepSec) }, image, maxRunTimeSec: 120 })

const dockerConfig = { binary: engine.binary }

function containerStartedAt (leaseId: string): number | null {
  const out = spawnSync(engine.binary, ['inspect', '--type', 'container', '--format', '{{json .State}}', containerName(leaseId)], { encoding: 'utf8', env: { PATH } })
  return out.status === 0 ? Date.parse((JSON.parse(out.stdout) as { StartedAt: string }).StartedAt) : null
}

describe(`the docker runner runs jobs in containers (${engine.label})`, () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let scratch: { dir: string, remove: () => Promise<void> }
  const leases: string[] = []

  beforeAll(async () => {
    scratch = await tempDir()
    ;[daemon, client] = await Promise.all([startProvider({
      gpus: 2,
      config: {
        runner: { kind: 'docker', stopGraceSec: 5, maxBundleBytes: 64 * 1024, docker: dockerConfig },
        billing: { intervalSec: 1, paymentGraceSec: 5 }
      }
    }), startClient()])
  })
  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
    removeContainers(engine.binary, leases.map(containerName))
    await scratch?.remove()
  })

  it('checks the engine at start and offers its simulated GPUs (no device flags for them)', () => {
    const status = daemon.provider.status()
    expect(status.runner).toMatchObject({ kind: 'docker', engineVersion: expect.any(String), problems: [] })
    expect(status.offer.gpus).toEqual([expect.objectContaining({ simulated: true, countTotal: 2 })])
  })

  it('runs the job in a container from its start: logs stream, output comes back, the image is recorded by id', async () => {
    const { wallet, bundle, terms } = await leaseForJob(client, daemon.provider.addresses(), join(scratch.dir, 'run'), leases)
    const events: JobEvent[] = []
    let startedAt: number | null = null
    const outcome = submitJob({
      ...clientOptions(client, wallet, terms),
      spec: jobSpec(20, 0.1),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => {
        events.push(e)
        if (e.kind === 'log' && startedAt === null) startedAt = containerStartedAt(terms.leaseId)
      }
    })
    expect(await outcome).toMatchObject({ state: 'completed', exitCode: 0 })
    const stdout = events.filter((e) => e.kind === 'log' && e.stream === 'stdout').map((e) => e.text)
    expect(stdout).toEqual([
      `job ${terms.leaseId} as ${process.getuid?.() ?? 0}`,
      ...Array.from({ length: 20 }, (_, i) => `step ${i + 1}`),
      'done'
    ])
    expect(events.filter((e) => e.kind === 'started')).toHaveLength(1)

    const ledger = daemon.provider.ledger
    const lease = ledger.getLease(terms.leaseId)
    expect(lease).toMatchObject({ state: 'completed', stateReason: 'EXIT_0' })
    // Billing starts once the container has started, not when docker run was called.
    expect(startedAt).not.toBeNull()
    expect(lease?.startedAt ?? 0).toBeGreaterThanOrEqual(startedAt ?? Infinity)
    const periods = ledger.usagePeriods(terms.leaseId)
    expect(periods.length).toBeGreaterThan(0)
    expect(periods.at(-1)?.final).toBe(true)
    // The image the container ran, by id, with the lease.
    const started = ledger.leaseEvents(terms.leaseId).find((e) => e.reason === 'JOB_STARTED')
    expect(started?.detail).toMatchObject({ runner: 'docker', image: { reference: TEST_IMAGE, id: engine.imageId } })
    // The output directory comes back as artifacts; the container is gone.
    const names: string[] = []
    await new Promise<void>((resolve, reject) => {
      const parser = list({ onReadEntry: (entry) => { names.push(entry.path) } })
      daemon.provider.jobs.artifacts(terms.leaseId).pipe(parser).on('finish', resolve).on('error', reject)
    })
    expect(names).toContain('output/result.txt')
    expect(await readFile(join(daemon.dataDir, 'jobs', terms.leaseId, 'output', 'result.txt'), 'utf8')).toBe('result after 20 steps\n')
    expect(containerExists(engine.binary, containerName(terms.leaseId))).toBe(false)
  }, 60_000)

  it('stops a job with SIGTERM and gives it the grace to checkpoint', async () => {
    const { wallet, bundle, terms } = await leaseForJob(client, daemon.provider.addresses(), join(scratch.dir, 'stop'), leases)
    const events: JobEvent[] = []
    const outcome = submitJob({
      ...clientOptions(client, wallet, terms),
      spec: jobSpec(10_000, 0.1),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { events.push(e) }
    })
    await vi.waitFor(() => { expect(events.some((e) => e.text === 'step 3')).toBeTruthy() }, { timeout: 20_000 })
    const stopped = await daemon.provider.jobs.terminate(terms.leaseId, 'RENTER_CANCEL')
    expect(stopped).toMatchObject({ state: 'terminated', reason: 'RENTER_CANCEL', exitCode: 0 })
    expect(await outcome).toMatchObject({ state: 'terminated', reason: 'RENTER_CANCEL' })
    expect(events.some((e) => e.kind === 'log' && e.text === 'checkpointed')).toBe(true)
    expect(await readFile(join(daemon.dataDir, 'jobs', terms.leaseId, 'checkpoints', 'ckpt-final'), 'utf8')).toMatch(/^stopped at \d+\n$/)
    expect(containerExists(engine.binary, containerName(terms.leaseId))).toBe(false)
  }, 60_000)

  it('refuses a job whose image is missing IMAGE_UNAVAILABLE, unbilled', async () => {
    const { wallet, bundle, terms } = await leaseForJob(client, daemon.provider.addresses(), join(scratch.dir, 'missing'), leases)
    await expect(submitJob({ ...clientOptions(client, wallet, terms), spec: jobSpec(1, 0.1, 'gpumesh-test/absent:1'), bundle: bundle.bytes, bundleSize: bundle.bytes.length }))
      .rejects.toMatchObject({ name: 'JobClientError', code: 'IMAGE_UNAVAILABLE', message: expect.stringContaining('gpumesh-test/absent:1 is not on this provider') })
    const ledger = daemon.provider.ledger
    expect(ledger.getLease(terms.leaseId)).toMatchObject({ state: 'failed', stateReason: 'IMAGE_UNAVAILABLE', startedAt: null })
    expect(ledger.usagePeriods(terms.leaseId)).toEqual([])
    expect(ledger.lastSample(terms.leaseId)).toBeNull()
    expect(containerExists(engine.binary, containerName(terms.leaseId))).toBe(false)
  }, 30_000)
})

describe(`a GPU runtime the engine lacks (${engine.label})`, () => {
  let scratch: { dir: string, remove: () => Promise<void> }
  let client: GpumeshNode
  const daemons: TestProvider[] = []
  const leases: string[] = []
  const config = { runner: { kind: 'docker' as const, stopGraceSec: 2, maxBundleBytes: 64 * 1024, docker: dockerConfig }, billing: { intervalSec: 1, paymentGraceSec: 5 } }
  /** One real NVIDIA GPU, as far as the daemon knows. */
  const nvidiaProber = (): StandInProber => {
    const prober = new StandInProber(0)
    prober.gpus = [simulatedGpu(0, { simulated: false, uuid: 'GPU-4f1c2a3b-0000-4000-8000-000000000000' })]
    return prober
  }

  beforeAll(async () => {
    scratch = await tempDir()
    client = await startClient()
  })
  afterAll(async () => {
    await client?.stop()
    for (const daemon of daemons) await daemon.stop()
    removeContainers(engine.binary, leases.map(containerName))
    await scratch?.remove()
  })

  it('offers nothing, leases nothing, and says why in provider status', async () => {
    const daemon = await startProvider({ prober: nvidiaProber(), config })
    daemons.push(daemon)
    const status = daemon.provider.status()
    expect(status.runner.problems).toEqual([expect.stringMatching(/^docker has no NVIDIA runtime: install nvidia-container-toolkit/)])
    expect(status.offer.gpus).toEqual([])
    expect(status.offer.reason).toMatch(/not offered: docker has no NVIDIA runtime: install nvidia-container-toolkit/)
    // A renter proposing directly (not from an offer) is refused too.
    const bundle = await jobBundle(join(scratch.dir, 'refused'))
    await expect(leaseFrom(client, daemon.provider.addresses(), Wallet.createRandom(), bundle.sha256))
      .rejects.toThrow(/NO_CAPACITY .*cannot run jobs: docker has no NVIDIA runtime/)
  })

  it('refuses a job docker cannot start (exit 125) RUNNER_FAILED, unbilled and recorded as the provider\'s fault', async () => {
    // The NVIDIA hook is on the daemon's PATH (so the check passes), but the engine cannot use it: the
    // runtime is broken, and docker run fails before the container starts.
    const bin = join(scratch.dir, 'bin')
    await mkdir(bin, { recursive: true })
    await writeFile(join(bin, 'nvidia-container-runtime-hook'), '#!/bin/sh\nexit 1\n', { mode: 0o755 })
    const daemon = await startProvider({ prober: nvidiaProber(), config, env: { PATH: `${bin}:${PATH}` } })
    daemons.push(daemon)
    expect(daemon.provider.status().runner.problems).toEqual([])
    const { wallet, bundle, terms } = await leaseForJob(client, daemon.provider.addresses(), join(scratch.dir, 'broken'), leases)
    await expect(submitJob({ ...clientOptions(client, wallet, terms), spec: jobSpec(1, 0.1), bundle: bundle.bytes, bundleSize: bundle.bytes.length }))
      .rejects.toMatchObject({ code: 'SPAWN_FAILED', message: expect.stringMatching(/docker run failed before the container started \(exit 125\): .*could not select device driver/) })
    const ledger = daemon.provider.ledger
    expect(ledger.getLease(terms.leaseId)).toMatchObject({ state: 'failed', stateReason: 'RUNNER_FAILED', startedAt: null })
    const failed = ledger.leaseEvents(terms.leaseId).find((e) => e.reason === 'RUNNER_FAILED')
    expect(failed?.detail).toMatchObject({ fault: 'provider' })
    expect(ledger.usagePeriods(terms.leaseId)).toEqual([])
    expect(ledger.lastSample(terms.leaseId)).toBeNull()
    expect(containerExists(engine.binary, containerName(terms.leaseId))).toBe(false)
  }, 30_000)
})

describe(`kill -9 of the daemon while its job runs in a container (${engine.label})`, () => {
  let dataDir: string
  let remove: () => Promise<void>
  let client: GpumeshNode
  const children: ChildProcess[] = []
  const leases: string[] = []
  const env = { ...process.env, PATH, GPUMESH_PASSWORD: PASSWORD, GPUMESH_HOME: '' }

  const start = async (previousPid: number | null): Promise<SpawnedDaemon & { info: ProviderJson }> =>
    await spawnDaemon(dataDir, { env, children, previousPid })

  beforeAll(async () => {
    ;({ dir: dataDir, remove } = await initDaemonDir(daemonConfig(1, [
      'billing:',
      '  intervalSec: 1',
      // Room for the restart: the renter attaches only once the new daemon listens.
      '  paymentGraceSec: 10',
      'runner:',
      '  kind: docker',
      '  stopGraceSec: 2',
      '  docker:',
      `    binary: ${JSON.stringify(engine.binary)}`
    ]), { env }))
    client = await startClient()
  })

  afterAll(async () => {
    killChildren(children)
    await client?.stop()
    removeContainers(engine.binary, leases.map(containerName))
    await remove?.()
  })

  it('re-attaches to the container after a restart: the job completes, every line once, the container removed', async () => {
    const first = await start(null)
    const { wallet, bundle, terms } = await leaseForJob(client, first.info.addresses, join(dataDir, 'bundle'), leases)
    const seen: JobEvent[] = []
    const job = submitJob({
      ...clientOptions(client, wallet, terms),
      // Runs until the test tells it to stop (a file in its working directory), well past the restart.
      spec: jobSpec(100_000, 0.1),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { seen.push(e) }
    }).catch((err: unknown) => err)
    await vi.waitFor(() => { expect(seen.some((e) => e.kind === 'usage') && seen.some((e) => e.text === 'step 10')).toBeTruthy() }, { timeout: 20_000 })
    first.child.kill('SIGKILL')
    await new Promise((resolve) => first.child.once('exit', resolve))
    expect(await job).toMatchObject({ name: 'JobClientError' })
    // The container outlives the daemon.
    expect(containerExists(engine.binary, containerName(terms.leaseId))).toBe(true)
    const lastSeen = seen.at(-1)?.sequence ?? 0
    const stepsBefore = seen.filter((e) => e.text?.startsWith('step ') === true).length

    const second = await start(first.info.pid)
    const moved = { ...terms, providerAddresses: second.info.addresses }
    let linesAfter = 0
    const outcome = attachJob({
      ...clientOptions(client, wallet, moved),
      fromSequence: lastSeen,
      onEvent: (e) => { seen.push(e); if (e.kind === 'log') linesAfter++ }
    })
    // The restarted daemon re-attached: the job's new lines reach the renter; then the job is told to finish.
    await vi.waitFor(() => { expect(linesAfter).toBeGreaterThanOrEqual(5) }, { timeout: 20_000 })
    await writeFile(join(dataDir, 'jobs', terms.leaseId, 'work', 'stop'), '')
    expect(await outcome).toMatchObject({ state: 'completed', exitCode: 0 })
    // provider status says which runner runs and on which engine.
    const status = await runCli(['provider', 'status', '--data-dir', dataDir], { env, timeoutMs: 20_000 })
    expect(status.code, status.stderr).toBe(0)
    expect(status.stdout).toMatch(/^Runner: docker \(docker engine .+\)$/m)
    expect(status.stdout).not.toMatch(/cannot run jobs/)
    second.child.kill('SIGTERM')
    expect(await new Promise((resolve) => second.child.once('exit', resolve))).toBe(0)

    expect(seen.map((e) => e.sequence)).toEqual(seen.map((_, i) => i + 1))
    const stdout = seen.filter((e) => e.kind === 'log' && e.stream === 'stdout').map((e) => e.text)
    const steps = stdout.length - 2
    expect(steps).toBeGreaterThan(stepsBefore)
    expect(stdout).toEqual([
      `job ${terms.leaseId} as ${process.getuid?.() ?? 0}`,
      ...Array.from({ length: steps }, (_, i) => `step ${i + 1}`),
      'done'
    ])
    const ledger = openLedger(join(dataDir, 'ledger.sqlite'))
    try {
      expect(ledger.getLease(terms.leaseId)).toMatchObject({ state: 'completed', stateReason: 'EXIT_0' })
      expect(ledger.usagePeriods(terms.leaseId).at(-1)?.final).toBe(true)
    } finally {
      ledger.close()
    }
    expect(containerExists(engine.binary, containerName(terms.leaseId))).toBe(false)
  }, 60_000)
})
