import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { validateSignedUsageReport, type SignedUsageReport } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import { EVENTS_FILE } from './event-file.js'
import { JobEventLog, type EventLogState } from './event-log.js'
import { jobPaths } from './job-dir.js'
import type { Clock } from '@gpumesh/protocol'
import type { JobsLogger } from './types.js'

export interface EventLogRebuildComponents {
  ledger: Ledger
  clock: Pick<Clock, 'now'>
  logger: JobsLogger
}

export interface EventLogRebuildOptions {
  /** Where job directories live: `<dataDir>/jobs`. */
  jobsDir: string
  /** Events of a re-attached job held in memory. */
  maxEventHistory: number
  /** Ended leases whose event logs are kept open (oldest dropped first). */
  endedLogs: number
}

/** Events of an ended lease held in memory; the rest is read from its event file on demand. */
const ENDED_LOG_HISTORY = 16

const ENDED_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'terminated'])

/**
 * Rebuilds a job's event log from its event file and the ledger: for a job re-attached after a
 * restart (`resumed`), and for a lease whose job ended (`ended`), before or after this daemon started.
 * The file is the truth for what renters saw; the ledger fills in what the file lacks (usage periods
 * written to the ledger but not to the file when the daemon died between the two, and the ending).
 */
export class EventLogRebuilder {
  readonly #c: EventLogRebuildComponents
  readonly #o: EventLogRebuildOptions
  /** Event logs of ended leases, loaded on demand (oldest dropped first). */
  readonly #ended = new Map<string, Promise<JobEventLog | null>>()

  constructor (components: EventLogRebuildComponents, options: EventLogRebuildOptions) {
    this.#c = components
    this.#o = options
  }

  /** A fresh log for a job about to start (its file is created on the first event). */
  fresh (leaseId: LeaseRecord['leaseId'], file: string): JobEventLog {
    return new JobEventLog(leaseId as JobEventLog['leaseId'], { file, maxHistory: this.#o.maxEventHistory, onWriteError: writeErrorLogger(this.#c.logger, leaseId) })
  }

  /**
   * A re-attached job's log from its event file (same sequence numbers, numbering on), with the usage
   * periods the ledger has but the file lacks appended, in order; and where the job was (log offsets,
   * announced checkpoints), for tailing to resume just after what was sent.
   */
  async resumed (lease: LeaseRecord, jobRoot: string): Promise<{ log: JobEventLog, state: EventLogState }> {
    const { log, state } = await JobEventLog.load(lease.leaseId as JobEventLog['leaseId'], join(jobRoot, EVENTS_FILE), {
      maxHistory: this.#o.maxEventHistory, onWriteError: writeErrorLogger(this.#c.logger, lease.leaseId)
    })
    if (log.lastSequence === 0) log.append(lease.startedAt ?? this.#c.clock.now(), { kind: 'started' })
    this.#appendMissingPeriods(log, state)
    return { log, state }
  }

  /**
   * The event log of a lease whose job ended, read from its event file: what a renter attaching after
   * the end replays. Completed from the ledger where the file falls short (usage periods it lacks, the
   * ending). Null when the lease never ran a job or is not ended. A handful of events stay in memory;
   * the rest is read from the file on demand.
   */
  async ended (leaseId: string): Promise<JobEventLog | null> {
    const lease = this.#c.ledger.getLease(leaseId)
    if (lease === null || lease.startedAt === null || !ENDED_STATES.has(lease.state)) return null
    const key = lease.leaseId.toLowerCase()
    let loading = this.#ended.get(key)
    if (loading === undefined) {
      loading = this.#loadEnded(lease)
      this.#ended.set(key, loading)
      loading.catch(() => { this.#ended.delete(key) })
      if (this.#ended.size > this.#o.endedLogs) {
        const oldest = this.#ended.keys().next().value
        if (oldest !== undefined) this.#ended.delete(oldest)
      }
    }
    return await loading
  }

  async #loadEnded (lease: LeaseRecord): Promise<JobEventLog | null> {
    const root = lease.jobDir ?? jobPaths(this.#o.jobsDir, lease.leaseId).root
    const leaseId = lease.leaseId as JobEventLog['leaseId']
    // The directory may be gone (artifact retention): then the log is rebuilt from the ledger, in memory.
    const { log, state } = existsSync(root)
      ? await JobEventLog.load(leaseId, join(root, EVENTS_FILE), { maxHistory: ENDED_LOG_HISTORY, onWriteError: writeErrorLogger(this.#c.logger, leaseId) })
      : { log: new JobEventLog(leaseId, { file: null }), state: null }
    if (log.lastSequence === 0) log.append(lease.startedAt ?? lease.endedAt ?? this.#c.clock.now(), { kind: 'started' })
    this.#appendMissingPeriods(log, state)
    if (!log.ended) appendEnding(log, lease, this.#c.clock)
    log.close()
    return log
  }

  /** Usage periods in the ledger after the last one the log sent, in order, as usage events. */
  #appendMissingPeriods (log: JobEventLog, state: EventLogState | null): void {
    const { ledger, clock, logger } = this.#c
    const sent = state?.lastPeriodIndex ?? -1
    const last = ledger.lastUsagePeriod(log.leaseId)
    if (last === null || last.periodIndex <= sent) return
    for (const period of ledger.usagePeriods(log.leaseId)) {
      if (period.periodIndex <= sent) continue
      let report: SignedUsageReport
      try {
        report = validateSignedUsageReport(JSON.parse(period.report))
      } catch (err) {
        logger.error({ err, leaseId: log.leaseId, periodIndex: period.periodIndex }, 'a stored usage report does not parse')
        return
      }
      log.append(clock.now(), { kind: 'usage', report })
    }
  }
}

/** The lease's ending, as recorded in the ledger, as the log's last event. */
function appendEnding (log: JobEventLog, lease: LeaseRecord, clock: Pick<Clock, 'now'>): void {
  const at = lease.endedAt ?? clock.now()
  if (lease.state === 'terminated') {
    log.append(at, { kind: 'terminated', state: lease.state, reason: lease.stateReason.slice(0, 128) || 'UNKNOWN' })
  } else {
    log.append(at, { kind: 'exit', exitCode: lease.exitCode, state: lease.state as 'completed' | 'failed' })
  }
}

/** An event-file write error handler that logs the first failure of a lease's log only. */
function writeErrorLogger (logger: JobsLogger, leaseId: string): (err: unknown) => void {
  let logged = false
  return (err) => {
    if (logged) return
    logged = true
    logger.error({ err, leaseId }, 'could not write the job\'s event file: its events are in memory only')
  }
}
