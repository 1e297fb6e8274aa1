import { open, stat } from 'node:fs/promises'
import { getgid, getuid } from 'node:process'
import type { JobRunner, RecordedJob, RunningJob, RunRequest } from './runner.js'
import { controlledJob, pollUntilGone, spawnWrapped } from './process-runner.js'
import { isSameProcessAlive, signalGroup } from './proc.js'
import { JobError } from './errors.js'
import {
  docker, firstLine, imageAllowed, inspectImage, pullImage, renderNode, type DockerCli, type LocalImage, type PullLimits, type ResolvedImage
} from './docker-engine.js'

export interface DockerRunnerOptions {
  /** The docker CLI. Default `docker`. */
  binary?: string
  /** `--memory`, e.g. "32g"; null: no limit. */
  memory: string | null
  /** `--cpus`; null: no limit. */
  cpus: number | null
  /** `--network`; `none` by default: no network at all. */
  network: 'none' | 'bridge' | 'host'
  stopGraceMs: number
  /** PATH for the docker CLI itself. */
  path?: string
  livenessPollMs?: number
  /** Images jobs may use (names, name:tag, name@digest or sha256:digest); null (default): any image present. */
  allowImages?: readonly string[] | null
  /** Pulls of allowed images that are not present; null (default): never pull. */
  pull?: PullLimits | null
  /** The engine's API socket, for pulls. Default `/var/run/docker.sock`. */
  socketPath?: string
  /** PCI address of a GPU (from the probe), to find an AMD GPU's render node. */
  pciBusIdOf?: (uuid: string) => string | null
  /** Where /dev and /sys are (tests). */
  devRoot?: string
  sysRoot?: string
  /** How long `docker run` may take to start the container. Default 60 s. */
  containerStartTimeoutMs?: number
  /** How often the container's state is read while it starts. Default 100 ms. */
  startPollMs?: number
}

/** Where the job's directories appear inside the container. */
export const CONTAINER_PATHS = Object.freeze({ work: '/job/work', output: '/job/output', checkpoints: '/job/checkpoints' })

/** Label on every job container: the lease it runs. */
export const LEASE_LABEL = 'gpumesh.lease'

/** Container name derived from the lease id: `gpumesh-<first 24 hex digits>`. */
export function containerName (leaseId: string): string {
  return `gpumesh-${leaseId.toLowerCase().replace(/^0x/, '').slice(0, 24)}`
}

const RESERVED_ENV = /^(GPUMESH_.*|CUDA_VISIBLE_DEVICES|ROCR_VISIBLE_DEVICES|HIP_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES|GPU_DEVICE_ORDINAL)$/

/** What the runner resolved before building the command: the image by id, AMD device nodes and their groups. */
export interface DockerRunTarget {
  /** The image to start (its id, `sha256:…`); default the spec's reference. */
  image?: string
  /** AMD: `/dev/kfd` and the leased GPUs' render nodes. */
  devices?: readonly string[]
  /** Groups owning those device nodes, so the job's user may open them. */
  groups?: readonly number[]
}

/**
 * The exact `docker run` arguments for a job (after the binary): foreground, named and labelled after
 * the lease (kept after it exits, so its state can be read, then removed by the runner), the leased
 * GPUs only — NVIDIA by `--gpus device=<uuids>`, AMD by their render nodes and `/dev/kfd` only,
 * simulated GPUs nothing — no privileges, no capabilities, no network unless configured, memory and
 * CPU limits, the bundle mounted as the working directory and output/checkpoints mounted read-write,
 * the host user's uid so the files stay the daemon's.
 */
export function dockerRunArgs (
  request: RunRequest,
  options: Pick<DockerRunnerOptions, 'memory' | 'cpus' | 'network'>,
  user: string | null = null,
  target: DockerRunTarget = {}
): string[] {
  const image = request.spec.image
  if (image === null || image.length === 0) throw new JobError('BAD_SPEC', 'the docker runner needs spec.image')
  const args = ['run', '--name', containerName(request.leaseId), '--label', `${LEASE_LABEL}=${request.leaseId}`, '--init']
  if (request.vendor === 'nvidia') {
    // The quotes are part of the value: docker reads --gpus as CSV, and a list of devices has commas.
    args.push('--gpus', `"device=${request.gpus.join(',')}"`)
  } else if (request.vendor === 'amd') {
    if (target.devices === undefined || target.devices.length === 0) throw new JobError('RUNNER_FAILED', 'no device nodes for the leased AMD GPUs')
    for (const device of target.devices) args.push('--device', device)
    for (const gid of target.groups ?? []) args.push('--group-add', String(gid))
  }
  args.push('--security-opt', 'no-new-privileges', '--cap-drop', 'ALL', '--network', options.network)
  if (options.memory !== null) args.push('--memory', options.memory)
  if (options.cpus !== null) args.push('--cpus', String(options.cpus))
  if (user !== null) args.push('--user', user)
  args.push(
    '-v', `${request.paths.work}:${CONTAINER_PATHS.work}`,
    '-v', `${request.paths.output}:${CONTAINER_PATHS.output}`,
    '-v', `${request.paths.checkpoints}:${CONTAINER_PATHS.checkpoints}`,
    '-w', CONTAINER_PATHS.work
  )
  const env: Array<[string, string]> = Object.entries(request.spec.env).filter(([k]) => !RESERVED_ENV.test(k))
  env.push(
    ['GPUMESH_LEASE_ID', request.leaseId],
    ['GPUMESH_OUTPUT_DIR', CONTAINER_PATHS.output],
    ['GPUMESH_CHECKPOINT_DIR', CONTAINER_PATHS.checkpoints]
  )
  for (const [k, v] of env) args.push('-e', `${k}=${v}`)
  args.push(target.image ?? image, request.spec.command, ...request.spec.args)
  return args
}

/** The parts of `docker inspect --format '{{json .State}}'` read here. */
interface ContainerState { Status?: string, StartedAt?: string, ExitCode?: number, Error?: string }

/** Docker's zero time: the container never started. */
const hasStarted = (state: ContainerState | null): boolean =>
  state !== null && typeof state.StartedAt === 'string' && !state.StartedAt.startsWith('0001-')

/**
 * Runs each job in a container with `docker run` in the foreground (through the same wrapper and log
 * files as the process runner). Before anything is billed: the image must be present and allowed
 * (or pulled within the owner's limits), else IMAGE_UNAVAILABLE; `start` resolves only once the
 * container has started, so a `docker run` that fails before (exit 125–127: the engine, its GPU
 * runtime) is a RUNNER_FAILED the renter never pays for. Stops with `docker stop -t <grace>`, then
 * SIGKILL to the client's group; the container is removed once the job has ended.
 */
export class DockerRunner implements JobRunner {
  readonly kind = 'docker' as const
  readonly #options: Required<Omit<DockerRunnerOptions, 'devRoot' | 'sysRoot'>> & Pick<DockerRunnerOptions, 'devRoot' | 'sysRoot'>
  readonly #cli: DockerCli

  constructor (options: DockerRunnerOptions) {
    this.#options = {
      binary: 'docker',
      path: '/usr/local/bin:/usr/bin:/bin',
      livenessPollMs: 500,
      allowImages: null,
      pull: null,
      socketPath: '/var/run/docker.sock',
      pciBusIdOf: () => null,
      containerStartTimeoutMs: 60_000,
      startPollMs: 100,
      ...options
    }
    this.#cli = { binary: this.#options.binary, path: this.#options.path }
  }

  /** How this runner reaches the engine (for the readiness checks). */
  get cli (): DockerCli { return this.#cli }

  async start (request: RunRequest): Promise<RunningJob> {
    const reference = request.spec.image
    if (reference === null || reference === '') throw new JobError('BAD_SPEC', 'the docker runner needs spec.image')
    const image = await this.#prepareImage(reference, request.progress ?? (() => {}))
    const target: DockerRunTarget = { image: image.id }
    if (request.vendor === 'amd') Object.assign(target, await this.#amdDevices(request.gpus))
    const user = getuid != null ? `${getuid()}:${getgid?.() ?? 0}` : null
    const args = dockerRunArgs(request, this.#options, user, target)
    const name = containerName(request.leaseId)
    const env = { PATH: this.#options.path, HOME: request.paths.root }
    // A container an interrupted earlier attempt at this lease left (the daemon died while it started).
    await this.#remove(name)
    const spawned = await spawnWrapped(request.paths, this.#options.binary, args, env, request.paths.root)
    let over = false
    void spawned.ended.then(() => { over = true })
    const startedBy = Date.now() + this.#options.containerStartTimeoutMs
    for (;;) {
      const ended = over
      const state = await this.#state(name)
      if (hasStarted(state)) break
      if (ended) {
        const exit = await spawned.ended
        await this.#remove(name)
        const said = firstLine(await readTail(request.paths.stderrLog)) || state?.Error || 'no reason given'
        throw new JobError('RUNNER_FAILED', `docker run failed before the container started (exit ${String(exit.code ?? exit.signal)}): ${said}`)
      }
      if (Date.now() > startedBy) {
        signalGroup(spawned.pid, 'SIGKILL')
        await this.#remove(name)
        throw new JobError('RUNNER_FAILED', `the container did not start within ${Math.round(this.#options.containerStartTimeoutMs / 1000)} s`)
      }
      await new Promise((resolve) => { setTimeout(resolve, this.#options.startPollMs) })
    }
    const job = controlledJob({
      leaseId: request.leaseId,
      paths: request.paths,
      pid: spawned.pid,
      pidStartTime: spawned.startTime,
      ended: spawned.ended.then(async (exit) => { await this.#remove(name); return exit }),
      defaultGraceMs: this.#options.stopGraceMs,
      maxRunTimeMs: request.maxRunTimeMs,
      terminate: (graceMs) => { this.#dockerStop(request.leaseId, graceMs) }
    })
    return Object.assign(job, { image: { reference, id: image.id, repoDigest: image.repoDigests[0] ?? null } satisfies ResolvedImage })
  }

  async attach (job: RecordedJob): Promise<RunningJob | null> {
    const name = containerName(job.leaseId)
    if (!(await isSameProcessAlive(job.pid, job.pidStartTime))) {
      // The client is gone: a container it left (running or exited) holds GPUs or disk; it goes too.
      await this.#remove(name)
      return null
    }
    return controlledJob({
      leaseId: job.leaseId,
      paths: job.paths,
      pid: job.pid,
      pidStartTime: job.pidStartTime,
      ended: pollUntilGone(job.pid, job.pidStartTime, this.#options.livenessPollMs).then(async (exit) => { await this.#remove(name); return exit }),
      defaultGraceMs: this.#options.stopGraceMs,
      maxRunTimeMs: null,
      terminate: (graceMs) => { this.#dockerStop(job.leaseId, graceMs) }
    })
  }

  /**
   * The image by id, present and allowed; an allowed image that is absent is pulled when the owner
   * allows pulls. Anything else is IMAGE_UNAVAILABLE, before the lease runs.
   */
  async #prepareImage (reference: string, progress: (text: string) => void): Promise<LocalImage> {
    const allow = this.#options.allowImages
    let image = await inspectImage(this.#cli, reference)
    if (image === null) {
      if (allow === null) throw new JobError('IMAGE_UNAVAILABLE', `image ${reference} is not on this provider, which runs only images it already has`)
      if (!imageAllowed(allow, reference, null)) throw new JobError('IMAGE_UNAVAILABLE', `image ${reference} is not one this provider allows (runner.docker.allowImages)`)
      if (this.#options.pull === null) throw new JobError('IMAGE_UNAVAILABLE', `image ${reference} is allowed but not on this provider, which pulls no images`)
      progress(`pulling ${reference}`)
      await pullImage(this.#options.socketPath, reference, this.#options.pull, progress)
      image = await inspectImage(this.#cli, reference)
      if (image === null) throw new JobError('IMAGE_UNAVAILABLE', `image ${reference} is still missing after its pull`)
    }
    if (!imageAllowed(allow, reference, image)) throw new JobError('IMAGE_UNAVAILABLE', `image ${reference} is not one this provider allows (runner.docker.allowImages)`)
    return image
  }

  /** `/dev/kfd` and the leased AMD GPUs' render nodes, with the groups that own them. */
  async #amdDevices (gpus: readonly string[]): Promise<Required<Pick<DockerRunTarget, 'devices' | 'groups'>>> {
    const host = { ...(this.#options.devRoot !== undefined ? { devRoot: this.#options.devRoot } : {}), ...(this.#options.sysRoot !== undefined ? { sysRoot: this.#options.sysRoot } : {}) }
    const kfd = `${this.#options.devRoot ?? '/dev'}/kfd`
    const devices = [kfd]
    for (const uuid of gpus) devices.push(await renderNode({ uuid, pciBusId: this.#options.pciBusIdOf(uuid) }, host))
    const groups = new Set<number>()
    for (const device of devices) {
      try {
        groups.add((await stat(device)).gid)
      } catch {
        throw new JobError('RUNNER_FAILED', `${device} is missing: containers cannot use AMD GPUs here`)
      }
    }
    return { devices, groups: [...groups].filter((g) => g !== 0) }
  }

  async #state (name: string): Promise<ContainerState | null> {
    const out = await docker(this.#cli, ['inspect', '--type', 'container', '--format', '{{json .State}}', name]).catch(() => null)
    if (out === null || out.exitCode !== 0) return null
    try {
      return JSON.parse(out.stdout) as ContainerState
    } catch {
      return null
    }
  }

  async #remove (name: string): Promise<void> {
    await docker(this.#cli, ['rm', '-f', name]).catch(() => null)
  }

  #dockerStop (leaseId: string, graceMs: number): void {
    const seconds = String(Math.max(1, Math.ceil(graceMs / 1000)))
    void docker({ ...this.#cli, timeoutMs: graceMs + 30_000 }, ['stop', '-t', seconds, containerName(leaseId)]).catch(() => null)
  }
}

/** The last few KiB of a log file (what docker said when it failed). */
async function readTail (file: string, bytes = 4096): Promise<string> {
  try {
    const fh = await open(file, 'r')
    try {
      const size = (await fh.stat()).size
      const buf = Buffer.alloc(Math.min(size, bytes))
      await fh.read(buf, 0, buf.length, size - buf.length)
      return buf.toString('utf8')
    } finally {
      await fh.close()
    }
  } catch {
    return ''
  }
}
