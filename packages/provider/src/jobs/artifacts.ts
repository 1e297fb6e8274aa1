import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { create } from 'tar'
import type { Ledger } from '@gpumesh/ledger'
import { isEndedLeaseState } from '@gpumesh/ledger'
import type { Clock } from '@gpumesh/protocol'
import type { JobsLogger } from './types.js'
import { silentLogger } from './types.js'
import type { JobPaths } from './job-dir.js'

/**
 * The job's results as a tar.gz stream: `output/` and `checkpoints/`, paths relative to the job root,
 * no owners, no symlinks followed out of the job (tar stores links as links).
 */
export function artifactStream (paths: JobPaths): Readable {
  const pack = create({ gzip: true, cwd: paths.root, portable: true, follow: false }, ['output', 'checkpoints'])
  return Readable.from(pack as AsyncIterable<Buffer>)
}

export interface ArtifactCleanupOptions {
  jobsDir: string
  ledger: Ledger
  clock: Pick<Clock, 'now'>
  retentionSec: number
  logger?: JobsLogger
}

/**
 * Removes the directories of leases that ended more than `retentionSec` ago. Directories of active
 * leases, of leases the ledger does not know, and anything not named like a lease are left alone.
 * Returns the lease ids removed.
 */
export async function cleanupArtifacts (options: ArtifactCleanupOptions): Promise<string[]> {
  const logger = options.logger ?? silentLogger
  const cutoff = options.clock.now() - options.retentionSec * 1000
  const removed: string[] = []
  let names: string[]
  try {
    names = await readdir(options.jobsDir)
  } catch {
    return removed
  }
  for (const name of names) {
    if (!/^0x[0-9a-f]{64}$/.test(name)) continue
    const lease = options.ledger.getLease(name)
    if (lease === null || !isEndedLeaseState(lease.state)) continue
    const endedAt = lease.endedAt ?? (await stat(join(options.jobsDir, name))).mtimeMs
    if (endedAt > cutoff) continue
    await rm(join(options.jobsDir, name), { recursive: true, force: true })
    removed.push(name)
    logger.info({ leaseId: name }, 'job artifacts removed after retention')
  }
  return removed
}
