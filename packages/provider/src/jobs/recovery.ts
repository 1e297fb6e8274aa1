import type { PaymentKey } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import { pathsFromJobDir } from './job-dir.js'
import { closeUsagePeriod } from './meter.js'
import { readExitCodeFile } from './process-runner.js'
import type { JobRunner, RunningJob } from './runner.js'
import { silentLogger, type JobsLogger } from './types.js'

export interface RecoverLeasesOptions {
  /** Takes over re-attached jobs (the JobManager); without it they are only reported (and left running). */
  jobs?: { resume: (lease: LeaseRecord, running: RunningJob) => Promise<unknown> }
  /** Signs the final report of a lease closed as failed (under the market domain, like every report). */
  paymentKey: PaymentKey
  logger?: JobsLogger
}

export interface RecoveryResult {
  /** Leases whose job was still alive (same pid, same start time) and is metered again. */
  reattached: string[]
  /** Leases closed `failed` (JOB_LOST), billed up to their last recorded sample. */
  failed: ClosedLease[]
  /** Leases whose job ran to its end, exit status 0, while the daemon was down: `completed`, billed the same way. */
  completed: ClosedLease[]
}

export interface ClosedLease { leaseId: string, billedToOffsetMs: number, exitCode: number | null }

/**
 * On daemon start (`JobManager.recover`): reconciles running leases with reality. A job still alive — the pid recorded with
 * ledger.setLeaseJob, with the same process start time (/proc/<pid>/stat field 22), so a reused pid is
 * not mistaken for it — is re-attached and handed to `jobs`. Otherwise the lease is closed after a
 * final period from the last billed offset to the last recorded sample (bounded by the lease):
 * `completed` (EXIT_0) when the job's wrapper recorded exit status 0 — it ran to its end while the
 * daemon was down, and its renter should hear that it succeeded — else `failed` with reason JOB_LOST.
 * Billing is never doubled: periods must extend the ledger's exactly, and a
 * lease already closed with a final period only gets its state transition.
 */
export async function recoverLeases (ledger: Ledger, runner: JobRunner | null, options: RecoverLeasesOptions): Promise<RecoveryResult> {
  const logger = options.logger ?? silentLogger
  const result: RecoveryResult = { reattached: [], failed: [], completed: [] }
  for (const lease of ledger.listLeases({ state: 'running' })) {
    const running = runner !== null && lease.jobPid !== null && lease.jobPidStartTime !== null && lease.jobDir !== null
      ? await runner.attach({ leaseId: lease.leaseId, pid: lease.jobPid, pidStartTime: lease.jobPidStartTime, paths: pathsFromJobDir(lease.jobDir, lease.leaseId) })
      : null
    if (running !== null) {
      if (options.jobs !== undefined) await options.jobs.resume(lease, running)
      result.reattached.push(lease.leaseId)
      logger.info({ leaseId: lease.leaseId, jobPid: lease.jobPid }, 're-attached to a job that outlived the daemon')
      continue
    }
    const closed = await closeLostLease(ledger, lease, options)
    if (closed.exitCode === 0) result.completed.push(closed)
    else result.failed.push(closed)
  }
  if (result.reattached.length > 0) logger.info({ leases: result.reattached }, 're-attached to jobs that outlived the previous daemon')
  if (result.completed.length > 0) logger.info({ leases: result.completed }, 'jobs finished while the daemon was down: leases completed, billed to their last sample')
  if (result.failed.length > 0) logger.warn({ leases: result.failed }, 'jobs gone while the daemon was down: leases failed, billed to their last sample')
  return result
}

async function closeLostLease (ledger: Ledger, lease: LeaseRecord, options: RecoverLeasesOptions): Promise<ClosedLease> {
  const last = ledger.lastUsagePeriod(lease.leaseId)
  const lastEnd = last?.endOffsetMs ?? 0
  const sample = ledger.lastSample(lease.leaseId)
  const billedTo = Math.min(sample?.offsetMs ?? 0, lease.durationSec * 1000)
  if (last?.final !== true && billedTo > lastEnd) {
    closeUsagePeriod(ledger, lease, { paymentKey: options.paymentKey }, {
      index: last === null ? 0 : last.periodIndex + 1,
      startOffsetMs: lastEnd,
      endOffsetMs: billedTo,
      final: true,
      previousCumulative: last?.cumulativeAmount ?? 0n
    })
  }
  const exitCode = lease.jobDir === null ? null : await readExitCodeFile(pathsFromJobDir(lease.jobDir, lease.leaseId).exitCodeFile)
  const logger = options.logger ?? silentLogger
  if (exitCode === 0) {
    ledger.transitionLease(lease.leaseId, 'completed', 'EXIT_0', { billedToOffsetMs: Math.max(billedTo, lastEnd), exitCode }, { exitCode })
    logger.info({ leaseId: lease.leaseId, billedTo }, 'job finished (exit 0) while the daemon was down: lease completed, billed to its last sample')
  } else {
    ledger.transitionLease(lease.leaseId, 'failed', 'JOB_LOST', { billedToOffsetMs: Math.max(billedTo, lastEnd), exitCode }, { exitCode })
    logger.warn({ leaseId: lease.leaseId, billedTo }, 'job gone after a restart: lease failed, billed to its last sample')
  }
  return { leaseId: lease.leaseId, billedToOffsetMs: Math.max(billedTo, lastEnd), exitCode }
}
