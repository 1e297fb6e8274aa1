import { spawn } from 'node:child_process'
import { chmod, lchown, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { isSameProcessAlive, readProcessStat, signalGroup } from './proc.js'
import type { GpuVendorKind, JobExit, JobRunner, RecordedJob, RunningJob, RunRequest } from './runner.js'
import type { JobPaths } from './job-dir.js'
import { JobError } from './errors.js'

export interface ProcessRunnerOptions {
  /** Default grace between SIGTERM and SIGKILL. */
  stopGraceMs: number
  /** PATH the job gets. Default: a plain system PATH; the daemon passes its own. */
  path?: string
  /** How often a re-attached job (not our child) is checked for liveness. Default 500 ms. */
  livenessPollMs?: number
}

/** The unprivileged account jobs run as (`runner.process.user`), never the daemon's own. */
export interface JobAccount {
  name: string
  uid: number
  gid: number
}

/** Variables the renter may not set: the provider decides them. */
const RESERVED_ENV = /^(GPUMESH_.*|CUDA_VISIBLE_DEVICES|ROCR_VISIBLE_DEVICES|HIP_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES|GPU_DEVICE_ORDINAL)$/

/**
 * The job's environment: nothing of the daemon's own (it may hold secrets), a plain base, the
 * renter's variables, then the provider's — GPU visibility set to the leased GPUs only.
 */
export function jobEnvironment (request: RunRequest, basePath: string, dirs: { output: string, checkpoints: string, home: string }): Record<string, string> {
  const env: Record<string, string> = { PATH: basePath, HOME: dirs.home, LANG: 'C.UTF-8' }
  for (const [k, v] of Object.entries(request.spec.env)) {
    if (!RESERVED_ENV.test(k)) env[k] = v
  }
  Object.assign(env, gpuVisibility(request.vendor, request.gpus))
  env.GPUMESH_LEASE_ID = request.leaseId
  env.GPUMESH_OUTPUT_DIR = dirs.output
  env.GPUMESH_CHECKPOINT_DIR = dirs.checkpoints
  return env
}

/** NVIDIA (and simulated GPUs): CUDA_VISIBLE_DEVICES by UUID; AMD: ROCR_VISIBLE_DEVICES. */
export function gpuVisibility (vendor: GpuVendorKind, gpus: readonly string[]): Record<string, string> {
  const list = gpus.join(',')
  return vendor === 'amd' ? { ROCR_VISIBLE_DEVICES: list, CUDA_VISIBLE_DEVICES: '' } : { CUDA_VISIBLE_DEVICES: list }
}

/**
 * A POSIX sh wrapper around the job: it is the process group leader, and it writes the job's exit
 * status to a file so that a restarted daemon can learn how a job it re-attached to ended. It traps
 * (not ignores) TERM/INT/HUP, so the job itself gets default dispositions and the wrapper outlives
 * a SIGTERM long enough to record the status.
 */
export const WRAPPER_SCRIPT = 'f="$1"; shift; trap ":" TERM INT HUP; "$@"; c=$?; printf "%s\\n" "$c" > "$f"; exit "$c"'

export function wrapperArgs (exitCodeFile: string, command: string, args: readonly string[]): string[] {
  return ['-c', WRAPPER_SCRIPT, 'gpumesh-job', exitCodeFile, command, ...args]
}

/**
 * Reads the wrapper's exit-code file (its first 32 bytes: a job running as another user may write
 * to it); null when absent, unreadable or not a number.
 */
export async function readExitCodeFile (path: string): Promise<number | null> {
  try {
    const file = await open(path, 'r')
    try {
      const { buffer, bytesRead } = await file.read(Buffer.alloc(32), 0, 32, 0)
      // Empty until the wrapper writes it (it is created beforehand for a job running as another user).
      const text = buffer.subarray(0, bytesRead).toString('utf8').trim()
      const n = Number(text)
      return /^\d+$/.test(text) && Number.isSafeInteger(n) ? n : null
    } finally {
      await file.close()
    }
  } catch {
    return null
  }
}

interface Spawned {
  pid: number
  /**
   * /proc/<pid>/stat field 22, read the moment the process started (before Node can reap it); 0 for a
   * job that was already over by then (it is never re-attached, so its start time is never compared).
   */
  startTime: number
  /** Resolves when the wrapper exits. */
  ended: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Shared by both runners: spawns `command args` through the wrapper in its own session and process
 * group, stdout/stderr appended to the job's log files (files, not pipes, so the job keeps running
 * and logging if the daemon dies), and manages the stop sequence and the run-time limit.
 */
export async function spawnWrapped (
  paths: JobPaths,
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  cwd: string,
  account: JobAccount | null = null
): Promise<Spawned> {
  const out = await open(paths.stdoutLog, 'a', 0o600)
  const err = await open(paths.stderrLog, 'a', 0o600)
  try {
    const child = spawn('/bin/sh', wrapperArgs(paths.exitCodeFile, command, args), {
      cwd, env, detached: true, stdio: ['ignore', out.fd, err.fd], ...(account != null ? { uid: account.uid, gid: account.gid } : {})
    })
    let exited = false
    const ended = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => { exited = true; resolve({ code, signal }) })
    })
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => { resolve(child.pid as number) })
      child.once('error', (e) => { reject(new JobError('SPAWN_FAILED', `cannot start the job: ${e.message}`, { cause: e })) })
    })
    child.unref()
    // A job that ends at once (a bad command, `exit 3`) may be reaped before its stat is read.
    const stat = await readProcessStat(pid)
    if (stat === null && !exited) await Promise.race([ended, new Promise((resolve) => { setTimeout(resolve, 1000).unref() })])
    if (stat === null && !exited) throw new JobError('SPAWN_FAILED', `process ${pid} vanished right after starting`)
    return { pid, startTime: stat?.startTime ?? 0, ended }
  } finally {
    await out.close()
    await err.close()
  }
}

export interface ControlledJobOptions {
  leaseId: string
  paths: JobPaths
  pid: number
  pidStartTime: number
  /** Resolves when the group leader is gone: from the child handle, or by polling /proc. */
  ended: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  defaultGraceMs: number
  maxRunTimeMs: number | null
  /** First step of stopping: SIGTERM to the group, or `docker stop`. */
  terminate: (graceMs: number) => void
}

/** A RunningJob around a process group: stop sequence, run-time limit, cleanup of stragglers. */
export function controlledJob (o: ControlledJobOptions): RunningJob {
  let cause: JobExit['cause'] = 'exit'
  let stopping: Promise<JobExit> | null = null
  let limitTimer: ReturnType<typeof setTimeout> | null = null
  let killTimer: ReturnType<typeof setTimeout> | null = null

  const exited: Promise<JobExit> = o.ended.then(async ({ code, signal }) => {
    if (limitTimer !== null) clearTimeout(limitTimer)
    if (killTimer !== null) clearTimeout(killTimer)
    // Whatever the job left behind in its group goes too: it would hold the GPUs.
    signalGroup(o.pid, 'SIGKILL')
    const fileCode = code === null ? await readExitCodeFile(o.paths.exitCodeFile) : code
    return { exitCode: fileCode, signal: fileCode === null ? signal : null, cause }
  })

  const stop = async (graceMs: number = o.defaultGraceMs): Promise<JobExit> => {
    if (stopping !== null) return await stopping
    stopping = (async () => {
      o.terminate(graceMs)
      killTimer = setTimeout(() => { signalGroup(o.pid, 'SIGKILL') }, graceMs)
      return await exited
    })()
    return await stopping
  }

  if (o.maxRunTimeMs !== null) {
    limitTimer = setTimeout(() => {
      cause = 'max-runtime'
      void stop()
    }, o.maxRunTimeMs)
  }

  return {
    leaseId: o.leaseId,
    pid: o.pid,
    pidStartTime: o.pidStartTime,
    paths: o.paths,
    exited,
    detach: (): void => {
      if (limitTimer !== null) clearTimeout(limitTimer)
      limitTimer = null
    },
    stop: async (graceMs?: number): Promise<JobExit> => {
      if (stopping === null && cause === 'exit') cause = 'stopped'
      return await stop(graceMs)
    }
  }
}

/** Waits until a process that is not our child is gone, polling /proc. */
export async function pollUntilGone (pid: number, startTime: number, intervalMs: number): Promise<{ code: null, signal: null }> {
  for (;;) {
    if (!(await isSameProcessAlive(pid, startTime))) return { code: null, signal: null }
    await new Promise((resolve) => { setTimeout(resolve, intervalMs).unref() })
  }
}

/**
 * Runs renters' code directly on this host in its own process group. With an account
 * (`useAccount`, from `runner.process.user`) the job runs as that user: its work, output and
 * checkpoint directories are handed to it, the rest of its job directory (logs, events, exit-code
 * file's directory) stays the daemon's, and it cannot read the daemon's data directory or /proc
 * entries. Without one it runs as the daemon's user and isolates nothing but the GPUs' visibility and
 * the environment (`runner.process.sameUser`: only for renters trusted with that account).
 */
export class ProcessRunner implements JobRunner {
  readonly kind = 'process' as const
  readonly #options: Required<ProcessRunnerOptions>
  #account: JobAccount | null = null

  constructor (options: ProcessRunnerOptions) {
    this.#options = { path: '/usr/local/bin:/usr/bin:/bin', livenessPollMs: 500, ...options }
  }

  /** Jobs started from now on run as `account` (the daemon must be root). */
  useAccount (account: JobAccount): void {
    this.#account = account
  }

  get account (): JobAccount | null {
    return this.#account
  }

  async start (request: RunRequest): Promise<RunningJob> {
    const { paths } = request
    const env = jobEnvironment(request, this.#options.path, { output: paths.output, checkpoints: paths.checkpoints, home: paths.work })
    if (this.#account !== null) await handOver(paths, this.#account)
    const spawned = await spawnWrapped(paths, request.spec.command, request.spec.args, env, paths.work, this.#account)
    return controlledJob({
      leaseId: request.leaseId,
      paths,
      pid: spawned.pid,
      pidStartTime: spawned.startTime,
      ended: spawned.ended,
      defaultGraceMs: this.#options.stopGraceMs,
      maxRunTimeMs: request.maxRunTimeMs,
      terminate: () => { signalGroup(spawned.pid, 'SIGTERM') }
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
      // The limit of a re-attached job is the lease's; the job manager enforces it through the meter.
      maxRunTimeMs: null,
      terminate: () => { signalGroup(job.pid, 'SIGTERM') }
    })
  }
}

/**
 * Gives a job's own directories to its account: work (with the extracted bundle), output and
 * checkpoints become its, recursively and without following links; the job root becomes enterable but
 * not listable or writable (0711), so the job cannot replace its logs or exit-code file with links; the
 * exit-code file is created for the wrapper, which runs as the account.
 */
async function handOver (paths: JobPaths, account: JobAccount): Promise<void> {
  await chmod(paths.root, 0o711)
  for (const dir of [paths.work, paths.output, paths.checkpoints]) await chownTree(dir, account)
  const file = await open(paths.exitCodeFile, 'w', 0o600)
  try {
    await file.chown(account.uid, account.gid)
  } finally {
    await file.close()
  }
}

async function chownTree (path: string, account: JobAccount): Promise<void> {
  await lchown(path, account.uid, account.gid)
  const entries = await readdir(path, { withFileTypes: true })
  for (const entry of entries) {
    const child = join(path, entry.name)
    if (entry.isDirectory()) await chownTree(child, account)
    else await lchown(child, account.uid, account.gid)
  }
}
