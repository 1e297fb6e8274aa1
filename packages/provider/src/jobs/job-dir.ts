import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'

/** Where one lease's job lives under the data directory. */
export interface JobPaths {
  /** `<jobsDir>/<leaseId>` */
  root: string
  /** The bundle, extracted; the job's working directory. */
  work: string
  /** `GPUMESH_OUTPUT_DIR` */
  output: string
  /** `GPUMESH_CHECKPOINT_DIR` */
  checkpoints: string
  stdoutLog: string
  stderrLog: string
  /** Written by the runner's wrapper with the job's exit status, so a restarted daemon can read it. */
  exitCodeFile: string
}

const LEASE_ID = /^0x[0-9a-f]{64}$/

export function jobPaths (jobsDir: string, leaseId: string): JobPaths {
  const id = leaseId.toLowerCase()
  if (!LEASE_ID.test(id)) throw new RangeError(`not a lease id: ${leaseId}`)
  const root = join(jobsDir, id)
  return {
    root,
    work: join(root, 'work'),
    output: join(root, 'output'),
    checkpoints: join(root, 'checkpoints'),
    stdoutLog: join(root, 'logs', 'stdout.log'),
    stderrLog: join(root, 'logs', 'stderr.log'),
    exitCodeFile: join(root, 'exit-code')
  }
}

/** Creates the job's directories (owner-only). Idempotent. */
export async function makeJobDirs (paths: JobPaths): Promise<void> {
  for (const dir of [paths.root, paths.work, paths.output, paths.checkpoints, join(paths.root, 'logs')]) {
    await mkdir(dir, { recursive: true, mode: 0o700 })
  }
}

/** A job directory's paths from the root stored in the ledger (`leases.job_dir`). */
export function pathsFromJobDir (jobDir: string, leaseId: string): JobPaths {
  return jobPaths(dirname(jobDir), leaseId)
}
