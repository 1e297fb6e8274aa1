import { execFile } from 'node:child_process'
import type { JobRunner, RecordedJob, RunningJob, RunRequest } from './runner.js'
import { controlledJob, pollUntilGone, spawnWrapped } from './process-runner.js'
import { isSameProcessAlive } from './proc.js'
import { JobError } from './errors.js'

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
}

/** Where the job's directories appear inside the container. */
export const CONTAINER_PATHS = Object.freeze({ work: '/job/work', output: '/job/output', checkpoints: '/job/checkpoints' })

/** Container name derived from the lease id: `gpumesh-<first 24 hex digits>`. */
export function containerName (leaseId: string): string {
  return `gpumesh-${leaseId.toLowerCase().replace(/^0x/, '').slice(0, 24)}`
}

const RESERVED_ENV = /^(GPUMESH_.*|CUDA_VISIBLE_DEVICES|ROCR_VISIBLE_DEVICES|HIP_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES)$/

/**
 * The exact `docker run` arguments for a job (after the binary): foreground, removed on exit, named
 * after the lease, the leased GPUs only, no privileges, no capabilities, no network unless configured,
 * memory and CPU limits, the bundle mounted as the working directory and output/checkpoints mounted
 * read-write, the host user's uid so the files stay the daemon's.
 */
export function dockerRunArgs (request: RunRequest, options: Pick<DockerRunnerOptions, 'memory' | 'cpus' | 'network'>, user: string | null = null): string[] {
  const image = request.spec.image
  if (image === null || image.length === 0) throw new JobError('BAD_SPEC', 'the docker runner needs spec.image')
  const args = ['run', '--rm', '--name', containerName(request.leaseId), '--init']
  if (request.vendor === 'nvidia') {
    // The quotes are part of the value: docker reads --gpus as CSV, and a list of devices has commas.
    args.push('--gpus', `"device=${request.gpus.join(',')}"`)
  } else if (request.vendor === 'amd') {
    args.push('--device', '/dev/kfd', '--device', '/dev/dri')
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
  if (request.vendor === 'amd') env.push(['ROCR_VISIBLE_DEVICES', request.gpus.join(',')])
  env.push(
    ['GPUMESH_LEASE_ID', request.leaseId],
    ['GPUMESH_OUTPUT_DIR', CONTAINER_PATHS.output],
    ['GPUMESH_CHECKPOINT_DIR', CONTAINER_PATHS.checkpoints]
  )
  for (const [k, v] of env) args.push('-e', `${k}=${v}`)
  args.push(image, request.spec.command, ...request.spec.args)
  return args
}

/**
 * Runs each job in a container with `docker run` in the foreground (through the same wrapper and log
 * files as the process runner); stops with `docker stop -t <grace>`, then SIGKILL to the client's group.
 */
export class DockerRunner implements JobRunner {
  readonly kind = 'docker' as const
  readonly #options: Required<DockerRunnerOptions>

  constructor (options: DockerRunnerOptions) {
    this.#options = { binary: 'docker', path: '/usr/local/bin:/usr/bin:/bin', livenessPollMs: 500, ...options }
  }

  async start (request: RunRequest): Promise<RunningJob> {
    const user = typeof process.getuid === 'function' ? `${process.getuid()}:${process.getgid?.() ?? 0}` : null
    const args = dockerRunArgs(request, this.#options, user)
    const env = { PATH: this.#options.path, HOME: request.paths.root }
    const spawned = await spawnWrapped(request.paths, this.#options.binary, args, env, request.paths.root)
    return controlledJob({
      leaseId: request.leaseId,
      paths: request.paths,
      pid: spawned.pid,
      pidStartTime: spawned.startTime,
      ended: spawned.ended,
      defaultGraceMs: this.#options.stopGraceMs,
      maxRunTimeMs: request.maxRunTimeMs,
      terminate: (graceMs) => { this.#dockerStop(request.leaseId, graceMs) }
    })
  }

  async attach (job: RecordedJob): Promise<RunningJob | null> {
    if (!(await isSameProcessAlive(job.pid, job.pidStartTime))) return null
    return controlledJob({
      leaseId: job.leaseId,
      paths: job.paths,
      pid: job.pid,
      pidStartTime: job.pidStartTime,
      ended: pollUntilGone(job.pid, job.pidStartTime, this.#options.livenessPollMs),
      defaultGraceMs: this.#options.stopGraceMs,
      maxRunTimeMs: null,
      terminate: (graceMs) => { this.#dockerStop(job.leaseId, graceMs) }
    })
  }

  #dockerStop (leaseId: string, graceMs: number): void {
    const seconds = String(Math.max(1, Math.ceil(graceMs / 1000)))
    execFile(this.#options.binary, ['stop', '-t', seconds, containerName(leaseId)], { env: { PATH: this.#options.path } }, () => {})
  }
}
