import type { Ledger } from '@gpumesh/ledger'
import type { PaymentKey } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import { recoverLeases, type JobManager, type JobRunner } from './jobs/index.js'
import type { Clock } from '@gpumesh/protocol'

export interface RecoveryComponents {
  ledger: Ledger
  logger: Logger
  clock: Clock
  /** The configured runner (null for `runner.kind: none`): what re-attaches to a job that outlived the daemon. */
  runner: JobRunner | null
  /** Takes over re-attached jobs (metering, events, vouchers). */
  jobs: JobManager
  /** Signs the final usage report of a lease closed because its job is gone (market domain). */
  paymentKey: PaymentKey
}

/**
 * Leases found `running` when the daemon starts: their job outlived (or died with) the previous daemon.
 * A job still alive (same pid and process start time) is re-attached and metered on from the last
 * recorded offset (the time the daemon was down after its last sample is not billed); a job that is
 * gone closes its lease — `completed` when it exited 0 on its own, else `failed`/`JOB_LOST` — billed up
 * to its last recorded sample, never twice.
 * Returns the ids of the leases it handled.
 */
export async function recoverRunningLeases (components: RecoveryComponents): Promise<string[]> {
  const { ledger, logger, runner, jobs, paymentKey } = components
  const result = await recoverLeases(ledger, runner, { jobs, paymentKey, logger })
  if (result.reattached.length > 0) logger.info({ leases: result.reattached }, 're-attached to jobs that outlived the previous daemon')
  if (result.completed.length > 0) logger.info({ leases: result.completed }, 'jobs finished while the daemon was down: leases completed, billed to their last sample')
  if (result.failed.length > 0) logger.warn({ leases: result.failed }, 'jobs gone while the daemon was down: leases failed, billed to their last sample')
  return [...result.reattached, ...result.completed.map((c) => c.leaseId), ...result.failed.map((f) => f.leaseId)]
}
