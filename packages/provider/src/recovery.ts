import type { Ledger } from '@gpumesh/ledger'
import type { Logger } from 'pino'
import { DAEMON_RESTARTED } from './constants.js'
import type { Clock } from './clock.js'

export interface RecoveryComponents {
  ledger: Ledger
  logger: Logger
  clock: Clock
}

/**
 * Leases found `running` when the daemon starts: their job outlived (or died with) the previous daemon.
 * For now each is marked `failed` with reason DAEMON_RESTARTED, which frees its GPUs. The jobs work
 * replaces this body with re-attaching to a live job, or closing a dead one billed up to its last
 * recorded sample (never twice). Returns the ids of the leases it handled.
 */
export async function recoverRunningLeases (components: RecoveryComponents): Promise<string[]> {
  const { ledger, logger, clock } = components
  const handled: string[] = []
  for (const lease of ledger.listLeases({ state: 'running' })) {
    ledger.transitionLease(lease.leaseId, 'failed', DAEMON_RESTARTED, { pid: lease.jobPid }, { endedAt: clock.now() })
    handled.push(lease.leaseId)
  }
  if (handled.length > 0) logger.warn({ leases: handled }, 'leases left running by the previous daemon marked failed')
  return handled
}
