import type { JobSpec } from '@gpumesh/protocol'
import type { JobPaths } from './job-dir.js'

/** Vendor of the leased GPUs: decides which visibility variable the job gets. */
export type GpuVendorKind = 'nvidia' | 'amd' | 'simulated'

/** What a runner needs to start one job. */
export interface RunRequest {
  leaseId: string
  paths: JobPaths
  /** UUIDs of the leased GPUs, the only ones the job may see. */
  gpus: readonly string[]
  vendor: GpuVendorKind
  spec: JobSpec
  /** Wall-clock limit; the runner stops the job (SIGTERM, grace, SIGKILL) when it is reached. */
  maxRunTimeMs: number
  /** The runner's set-up before the job starts (an image pull), one line at a time, for the job's events. */
  progress?: (text: string) => void
}

/** How a job ended, as the runner saw it. */
export interface JobExit {
  /** The job's exit status; null when killed by a signal or unknown (a job re-attached after a restart). */
  exitCode: number | null
  signal: NodeJS.Signals | null
  /** `exit`: it ended by itself; `max-runtime`: the runner stopped it at the limit; `stopped`: stop() was called. */
  cause: 'exit' | 'max-runtime' | 'stopped'
}

/** A job the runner started or re-attached to. */
export interface RunningJob {
  readonly leaseId: string
  /** The process group leader (the runner's wrapper); stored with its start time for recovery. */
  readonly pid: number
  /** /proc/<pid>/stat field 22. */
  readonly pidStartTime: number
  readonly paths: JobPaths
  /** Resolves once, when the job (its whole process group) has ended. Never rejects. */
  readonly exited: Promise<JobExit>
  /**
   * SIGTERM (or `docker stop`), wait `graceMs` so the job can checkpoint, then SIGKILL the whole group.
   * Resolves with the exit; calling it again, or after the exit, returns the same exit.
   */
  stop: (graceMs?: number) => Promise<JobExit>
  /** Lets go of the job without stopping it (daemon shutting down with jobs left running): clears timers. */
  detach: () => void
  /** The docker runner: the image the container runs, by digest (recorded with the lease). */
  readonly image?: { reference: string, id: string, repoDigest: string | null }
}

/** A job recorded in the ledger, to re-attach to after a daemon restart. */
export interface RecordedJob {
  leaseId: string
  pid: number
  pidStartTime: number
  paths: JobPaths
}

/** One runner interface; lease code never knows which runner it drives. */
export interface JobRunner {
  readonly kind: 'process' | 'docker'
  /**
   * Starts the job; resolves once it really runs (the docker runner: once its container started), so
   * billing starts there. A failure of the provider's set-up throws a JobError (RUNNER_FAILED,
   * IMAGE_UNAVAILABLE) and nothing was billed.
   */
  start: (request: RunRequest) => Promise<RunningJob>
  /** The job if that same process (pid and start time) is still alive, else null. */
  attach: (job: RecordedJob) => Promise<RunningJob | null>
}
