import { EventEmitter } from 'node:events'
import Database from 'better-sqlite3'
import { ZERO_ADDRESS, systemClock, type Clock } from '@gpumesh/protocol'
import { DEFAULT_BUSY_TIMEOUT_MS, MAX_VOUCHER_SEQUENCE, VOUCHER_SEQUENCE_DIGITS } from './constants.js'
import {
  InvalidInputError, InvalidTransitionError, LedgerClosedError, LedgerError, NoCapacityError, NotFoundError,
  ReplayError, UsagePeriodOrderError, VoucherOrderError, toLedgerError
} from './errors.js'
import { canTransition, isActiveLeaseState, isEndedLeaseState, isLeaseState } from './lease-state.js'
import type { LeaseState } from './lease-state.js'
import { assertKnownVersion, migrate } from './migrations.js'
import { checkAddress, checkJsonText, moneyFromText, moneyToText, optionalMoneyToText, stringifyJson } from './money.js'
import {
  gpuFromRow, leaseEventFromRow, leaseFromRow, offerFromRow, rejectionFromRow, settlementFromRow,
  usagePeriodFromRow, usageSampleFromRow, voucherFromRow
} from './rows.js'
import type {
  GpuRow, LeaseEventRow, LeaseRow, OfferRow, RejectionRow, SettlementRow, UsagePeriodRow, UsageSampleRow,
  VoucherRow
} from './rows.js'
import { SettlementStore } from './settlements.js'
import { prepareStatements } from './statements.js'
import type { Statements } from './statements.js'
import type {
  ActivityCounts, GpuHealthState, GpuInput, GpuRecord, LeaseEventRecord, LeaseJob, LeaseRecord, LedgerLogger,
  LedgerOptions, OfferRecord, RejectionInput, RejectionRecord, ReserveLeaseInput, SettlementInput,
  SettlementRecord, SettlementState, TransitionExtra, UsagePeriodInput, UsagePeriodRecord, UsagePeriodWritten,
  UsageSample, UsageSampleRecord, VoucherInput, VoucherRecord
} from './types.js'
import type {
  ChainPaid, ConfirmSettlementInput, EarningsOptions, LeaseSettlementView, RenterExposure, RenterExposureOptions,
  SettlementBatchRecord, SettlementEntryInput,
  SettlementKind, TokenEarnings, UnsettledVoucher, UnsettledVouchersOptions
} from './types.js'

const NOOP = (): void => {}
const SILENT_LOGGER: LedgerLogger = { debug: NOOP, info: NOOP, warn: NOOP, error: NOOP }
const METERED_STATES: readonly LeaseState[] = ['running', 'completed', 'terminated', 'failed']

export interface ListLeasesOptions {
  /** One state or several; all leases when absent. */
  state?: LeaseState | readonly LeaseState[]
}

export interface ListRejectionsOptions {
  /** Only rejections at or after this time. */
  since?: number
  /** Newest first; default 1000. */
  limit?: number
}

/** What the ledger tells about itself once a write is committed. */
export interface LedgerEvents {
  /**
   * A lease took GPUs (accepted) or gave them back (ended: completed, failed, terminated, expired),
   * whoever wrote it: the one place the provider learns that its sellable capacity moved.
   */
  'capacity-changed': [{ leaseId: string, state: LeaseState }]
}

interface Open {
  db: Database.Database
  s: Statements
  /** Runs `fn` in an IMMEDIATE transaction committed with synchronous=FULL (fsync of the WAL). */
  durable: <T>(fn: () => T) => T
  /** Runs `fn` in an IMMEDIATE transaction committed with synchronous=NORMAL (no fsync). */
  relaxed: <T>(fn: () => T) => T
  settlements: SettlementStore
}

/**
 * The provider's SQLite ledger. The constructor does no I/O; `open()` opens the file, migrates it and
 * prepares every statement; `close()` closes it and may be called any number of times. Every method is
 * synchronous (better-sqlite3) and every write that belongs together is one transaction.
 */
export class Ledger extends EventEmitter<LedgerEvents> {
  readonly path: string
  readonly #clock: Pick<Clock, 'now'>
  readonly #logger: LedgerLogger
  readonly #busyTimeoutMs: number
  #open: Open | null = null
  /** Samples queued by `queueUsageSamples`, one group per call, written at the end of the turn. */
  #queuedSamples: Array<readonly UsageSample[]> = []
  /** Usage periods queued by `queueUsagePeriod`, written with the samples at the end of the turn. */
  #queuedPeriods: Array<{ period: UsagePeriodInput, done: UsagePeriodWritten }> = []
  #usageFlush: ReturnType<typeof setImmediate> | null = null

  constructor (path: string, options: LedgerOptions = {}) {
    super()
    this.path = path
    this.#clock = options.clock ?? systemClock
    this.#logger = options.logger ?? SILENT_LOGGER
    this.#busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS
  }

  get isOpen (): boolean {
    return this.#open !== null
  }

  /** Opens (creating if needed) and migrates the database. Opening an open ledger does nothing. */
  open (): void {
    if (this.#open !== null) return
    let db: Database.Database | undefined
    try {
      db = new Database(this.path)
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(this.#busyTimeoutMs))}`)
      // Before anything writes: a file from a newer gpumesh is left exactly as it was.
      assertKnownVersion(db, this.path)
      const mode = db.pragma('journal_mode = WAL', { simple: true }) as string
      if (mode !== 'wal') throw new LedgerError(`${this.path}: could not switch to WAL (journal_mode is ${mode})`)
      db.pragma('synchronous = FULL')
      db.pragma('foreign_keys = ON')
      migrate(db, this.path, this.#logger)
      const s = prepareStatements(db)
      const conn = db
      const inTransaction = <T>(sync: Database.Statement, fn: () => T): T => {
        if (conn.inTransaction) return fn()
        sync.run()
        try {
          return conn.transaction(fn).immediate()
        } finally {
          if (sync !== s.syncFull) s.syncFull.run()
        }
      }
      const durable = <T>(fn: () => T): T => inTransaction(s.syncFull, fn)
      this.#open = {
        db,
        s,
        durable,
        relaxed: (fn) => inTransaction(s.syncNormal, fn),
        settlements: new SettlementStore(db, durable, this.#clock)
      }
      this.#logger.info({ path: this.path }, 'ledger open')
    } catch (err) {
      db?.close()
      throw toLedgerError(err, `open ledger ${this.path}`)
    }
  }

  /** Closes the database, after writing the samples and periods still queued. Closing a closed ledger does nothing. */
  close (): void {
    const open = this.#open
    if (open === null) return
    this.flushUsage()
    this.#open = null
    try {
      open.db.close()
    } catch (err) {
      throw toLedgerError(err, 'close ledger')
    }
  }

  // ── GPUs ──────────────────────────────────────────────────────────────────────────────────────────

  /** Inserts or refreshes GPUs as probed (one transaction). `lastSeen` becomes now. */
  upsertGpus (gpus: readonly GpuInput[]): void {
    this.#run('upsert GPUs', ({ s, relaxed }) => {
      const now = this.#clock.now()
      relaxed(() => {
        for (const gpu of gpus) {
          s.upsertGpu.run({
            uuid: gpu.uuid,
            idx: gpu.index,
            vendor: gpu.vendor,
            name: gpu.name,
            class: gpu.class,
            memoryMiB: gpu.memoryMiB,
            simulated: gpu.simulated ? 1 : 0,
            now,
            state: gpu.state,
            problems: JSON.stringify(gpu.problems)
          })
        }
      })
    })
  }

  /** Every GPU ever seen, by index; `state` is `reserved` or `leased` while an active lease holds it. */
  listGpus (): GpuRecord[] {
    return this.#run('list GPUs', ({ s }) => (s.listGpus.all() as GpuRow[]).map(gpuFromRow))
  }

  /** Records the probe's verdict on a GPU. A GPU held by a lease stays held; it is just not offered. */
  markGpuState (uuid: string, state: GpuHealthState, problems: readonly string[] = []): void {
    this.#run('mark GPU state', ({ s, relaxed }) => {
      relaxed(() => {
        const info = s.markGpuState.run(state, JSON.stringify(problems), this.#clock.now(), uuid)
        if (info.changes === 0) throw new NotFoundError('gpu', uuid)
      })
    })
  }

  // ── Offers and small state ────────────────────────────────────────────────────────────────────────

  recordOffer (offer: OfferRecord): void {
    this.#run('record offer', ({ s, relaxed }) => {
      relaxed(() => s.insertOffer.run({ ...offer }))
    })
  }

  latestOffer (): OfferRecord | null {
    return this.#run('read latest offer', ({ s }) => {
      const row = s.latestOffer.get() as OfferRow | undefined
      return row === undefined ? null : offerFromRow(row)
    })
  }

  getKv (key: string): string | null {
    return this.#run('read kv', ({ s }) => {
      const row = s.getKv.get(key) as { value: string } | undefined
      return row === undefined ? null : row.value
    })
  }

  setKv (key: string, value: string): void {
    this.#run('write kv', ({ s, durable }) => {
      durable(() => s.setKv.run(key, value))
    })
  }

  // ── Orders and leases ─────────────────────────────────────────────────────────────────────────────

  /**
   * Remembers an order id until `expiresAt`. Returns false when it was already seen (a replay).
   * `reserveLease` does this itself, in its own transaction.
   */
  markOrderSeen (orderId: string, expiresAt: number): boolean {
    return this.#run('mark order seen', ({ s, durable }) => durable(() => {
      const inserted = s.insertSeenOrder.run(orderId, this.#clock.now(), expiresAt).changes === 1
      return inserted && s.leaseByOrder.get(orderId) === undefined
    }))
  }

  /** Forgets order ids whose order expired before `now` (an expired order is refused anyway). */
  pruneSeenOrders (now: number = this.#clock.now()): number {
    return this.#run('prune seen orders', ({ s, relaxed }) => relaxed(() => s.pruneSeenOrders.run(now).changes))
  }

  /**
   * Accepts a lease: marks the order seen, takes the first `gpuCount` free GPUs of `eligibleGpuUuids`
   * that no active lease holds, and writes the lease (state accepted), its events, its GPUs and their
   * reservations, all in one IMMEDIATE transaction. Throws ReplayError or NoCapacityError having
   * written nothing. Returns the chosen GPU UUIDs.
   */
  reserveLease (input: ReserveLeaseInput): string[] {
    const chosen = this.#reserve(input)
    this.#capacityChanged(input.leaseId, 'accepted')
    return chosen
  }

  #reserve (input: ReserveLeaseInput): string[] {
    return this.#run('reserve lease', ({ s, durable }) => {
      if (!Number.isSafeInteger(input.gpuCount) || input.gpuCount < 1) {
        throw new InvalidInputError('gpuCount', 'must be a positive integer')
      }
      const row = {
        leaseId: input.leaseId,
        orderId: input.orderId,
        renter: input.renter,
        renterPeerId: input.renterPeerId,
        matcherPeerId: input.matcherPeerId,
        provider: input.provider,
        token: input.token,
        chainId: moneyToText(input.chainId, 'chainId'),
        pricePerGpuHour: moneyToText(input.pricePerGpuHour, 'pricePerGpuHour'),
        gpuClass: input.gpuClass,
        gpuCount: input.gpuCount,
        durationSec: input.durationSec,
        billingIntervalSec: input.billingIntervalSec,
        paymentGraceSec: input.paymentGraceSec,
        startDeadline: input.startDeadline,
        jobHash: input.jobHash,
        terms: input.terms == null ? null : checkJsonText(input.terms, 'terms'),
        escrow: checkAddress(input.escrow ?? ZERO_ADDRESS, 'escrow'),
        reason: 'accepted',
        now: this.#clock.now()
      }
      const detail = input.detail === undefined ? null : stringifyJson(input.detail)
      return durable(() => {
        const now = row.now
        if (s.leaseByOrder.get(input.orderId) !== undefined ||
          s.insertSeenOrder.run(input.orderId, now, input.orderExpiresAt).changes === 0) {
          throw new ReplayError(input.orderId)
        }
        const chosen: string[] = []
        const seen = new Set<string>()
        for (const uuid of input.eligibleGpuUuids) {
          if (chosen.length === input.gpuCount) break
          if (seen.has(uuid)) continue
          seen.add(uuid)
          const gpu = s.gpuAvailability.get(uuid) as { state: string, lease_id: string | null } | undefined
          if (gpu !== undefined && gpu.state === 'free' && gpu.lease_id === null) chosen.push(uuid)
        }
        if (chosen.length < input.gpuCount) throw new NoCapacityError(input.gpuCount, chosen.length)
        s.insertLease.run(row)
        s.insertEvent.run(input.leaseId, now, null, 'proposed', 'proposal received', null)
        s.insertEvent.run(input.leaseId, now, 'proposed', 'accepted', 'accepted', detail)
        chosen.forEach((uuid, position) => {
          s.insertLeaseGpu.run(input.leaseId, uuid, position)
          s.insertReservation.run(uuid, input.leaseId)
        })
        return chosen
      })
    })
  }

  /**
   * Logs a proposal turned down before it became a lease (bad signature, price too low, no capacity,
   * replay...). It marks nothing as seen: a rejection never blocks a later valid proposal of the same
   * order, and a replay of an accepted order is still caught by `seen_orders`.
   */
  recordRejection (input: RejectionInput): RejectionRecord {
    return this.#run('record rejection', ({ s, relaxed }) => {
      const proposal = input.proposal == null ? null : checkJsonText(input.proposal, 'proposal')
      return relaxed(() => {
        const info = s.insertRejection.run(this.#clock.now(), input.orderId, input.renter, input.matcherPeerId,
          input.code, input.message, proposal)
        return rejectionFromRow(s.getRejection.get(info.lastInsertRowid) as RejectionRow)
      })
    })
  }

  /** Rejected proposals, newest first. */
  listRejections (options: ListRejectionsOptions = {}): RejectionRecord[] {
    return this.#run('list rejections', ({ s }) =>
      (s.listRejections.all(options.since ?? 0, options.limit ?? 1000) as RejectionRow[]).map(rejectionFromRow))
  }

  /**
   * Proposals as the ledger knows them, across restarts: every lease it holds was an accepted proposal,
   * and every recorded rejection is counted by its code.
   */
  proposalCounts (): { accepted: number, rejected: Record<string, number> } {
    return this.#run('count proposals', ({ s }) => {
      const accepted = (s.countLeases.get() as { n: number }).n
      const rejected: Record<string, number> = {}
      for (const row of s.countRejectionsByCode.all() as Array<{ code: string, n: number }>) rejected[row.code] = row.n
      return { accepted, rejected }
    })
  }

  /**
   * Totals for monitoring, each one query: leases by state, GPU-milliseconds metered in all usage
   * periods, vouchers received, settlement batches by kind and state.
   */
  activityCounts (): ActivityCounts {
    return this.#run('count activity', ({ s }) => {
      const leasesByState: Record<string, number> = {}
      for (const row of s.countLeasesByState.all() as Array<{ state: string, n: number }>) leasesByState[row.state] = row.n
      return {
        leasesByState,
        gpuMs: BigInt((s.sumGpuMs.get() as { total: string }).total),
        vouchers: (s.countVouchers.get() as { n: number }).n,
        settlements: (s.countSettlementsByState.all() as Array<{ kind: SettlementKind, state: SettlementState, n: number }>)
          .map((r) => ({ kind: r.kind, state: r.state, count: r.n }))
      }
    })
  }

  /** Stores the signed lease terms once they are signed. Setting the same terms again does nothing. */
  setLeaseTerms (leaseId: string, terms: string): void {
    this.#run('set lease terms', ({ s, durable }) => {
      checkJsonText(terms, 'terms')
      durable(() => {
        const row = s.leaseTerms.get(leaseId) as { terms: string | null } | undefined
        if (row === undefined) throw new NotFoundError('lease', leaseId)
        if (row.terms === terms) return
        if (row.terms !== null) throw new InvalidInputError('terms', `lease ${leaseId} already has signed terms`)
        s.setLeaseTerms.run(terms, this.#clock.now(), leaseId)
      })
    })
  }

  /**
   * Moves a lease along the state machine, writing the new state and its event in one transaction.
   * Ending states release the lease's GPUs in that same transaction. Returns the updated lease.
   */
  transitionLease (leaseId: string, to: LeaseState, reason: string, detail?: Record<string, unknown>, extra: TransitionExtra = {}): LeaseRecord {
    const lease = this.#run('transition lease', ({ s, durable }) => {
      if (!isLeaseState(to)) throw new InvalidInputError('to', `unknown lease state ${String(to)}`)
      const detailText = detail === undefined ? null : stringifyJson(detail)
      return durable(() => {
        this.#transition(s, leaseId, to, reason, detailText, extra)
        return leaseFromRow(s.getLease.get(leaseId) as LeaseRow)
      })
    })
    if (isEndedLeaseState(to)) this.#capacityChanged(lease.leaseId, to)
    return lease
  }

  /** Records the job process of a running lease, so that recovery can find it after a restart. */
  setLeaseJob (leaseId: string, job: LeaseJob): void {
    this.#run('set lease job', ({ s, durable }) => {
      durable(() => {
        const row = s.leaseState.get(leaseId) as { state: LeaseState } | undefined
        if (row === undefined) throw new NotFoundError('lease', leaseId)
        if (!isActiveLeaseState(row.state)) throw new InvalidInputError('leaseId', `lease ${leaseId} is ${row.state}`)
        s.setLeaseJob.run(job.pid, job.pidStartTime, job.jobDir, this.#clock.now(), leaseId)
      })
    })
  }

  getLease (leaseId: string): LeaseRecord | null {
    return this.#run('read lease', ({ s }) => {
      const row = s.getLease.get(leaseId) as LeaseRow | undefined
      return row === undefined ? null : leaseFromRow(row)
    })
  }

  /** Leases, oldest first, optionally only those in the given state(s). Rejections: `listRejections`. */
  listLeases (options: ListLeasesOptions = {}): LeaseRecord[] {
    return this.#run('list leases', ({ s }) => {
      const rows = options.state === undefined
        ? s.listLeases.all()
        : s.listLeasesByState.all(JSON.stringify(typeof options.state === 'string' ? [options.state] : options.state))
      return (rows as LeaseRow[]).map(leaseFromRow)
    })
  }

  /** Leases that hold GPUs: accepted or running. */
  activeLeases (): LeaseRecord[] {
    return this.listLeases({ state: ['accepted', 'running'] })
  }

  /** The lease's events in the order they happened. */
  leaseEvents (leaseId: string): LeaseEventRecord[] {
    return this.#run('read lease events', ({ s }) => (s.leaseEvents.all(leaseId) as LeaseEventRow[]).map(leaseEventFromRow))
  }

  /** Expires accepted leases whose start deadline has passed, freeing their GPUs. Returns their ids. */
  expireOverdueLeases (now: number = this.#clock.now()): string[] {
    const expired = this.#expireOverdue(now)
    for (const id of expired) this.#capacityChanged(id, 'expired')
    return expired
  }

  #expireOverdue (now: number): string[] {
    return this.#run('expire overdue leases', ({ s, durable }) => durable(() => {
      const ids = (s.overdueLeases.all(now) as Array<{ lease_id: string }>).map((r) => r.lease_id)
      for (const id of ids) {
        this.#transition(s, id, 'expired', 'START_DEADLINE', stringifyJson({ now }), { endedAt: now })
      }
      if (ids.length > 0) this.#logger.info({ count: ids.length }, 'leases expired before their job started')
      return ids
    }))
  }

  // ── Usage ─────────────────────────────────────────────────────────────────────────────────────────

  /** Appends samples in one transaction (no fsync: a kill -9 keeps them, a power cut may lose the last). */
  appendUsageSamples (samples: readonly UsageSample[]): void {
    if (samples.length === 0) return
    this.#run('append usage samples', ({ s, relaxed }) => {
      relaxed(() => { this.#insertSamples(s, samples) })
    })
  }

  #insertSamples (s: Statements, samples: readonly UsageSample[]): void {
    for (const x of samples) this.#insertSample(s, x)
  }

  #insertSample (s: Statements, x: UsageSample): void {
    s.insertSample.run(x.leaseId, x.offsetMs, x.at, x.gpuUuid, x.utilizationPercent, x.memoryUsedMiB, x.powerW)
  }

  /**
   * Queues samples to be written with everything else queued in this turn of the event loop: one
   * transaction when the turn ends, however many leases sampled in it, instead of one per lease (no
   * fsync, unless a usage period is queued too). A kill -9 loses at most what was queued in the
   * current turn, that is each lease's current sample. Reading samples or periods, appending a period
   * and `close()` write the queue first, so no reader misses a sample. The array is kept as given
   * until then.
   */
  queueUsageSamples (samples: readonly UsageSample[]): void {
    if (this.#open === null) throw new LedgerClosedError()
    if (samples.length === 0) return
    this.#queuedSamples.push(samples)
    this.#scheduleUsageFlush()
  }

  /**
   * Queues a closed usage period, to be appended with every sample and period queued in this turn in
   * one fsync'd transaction when the turn ends: one fsync however many leases close a period in the
   * turn. Each period is checked as `appendUsagePeriod` checks it, and on its own: a refused period
   * writes nothing of itself and costs no other its place. `done.written` is called once the
   * transaction is committed (so a report sent from there is already durable), `done.failed` with the
   * error otherwise; either is called exactly once, in the order the periods were queued. Until then
   * the period is not in the ledger: a kill -9 loses it, and its report, which was never sent.
   */
  queueUsagePeriod (period: UsagePeriodInput, done: UsagePeriodWritten): void {
    if (this.#open === null) throw new LedgerClosedError()
    this.#queuedPeriods.push({ period, done })
    this.#scheduleUsageFlush()
  }

  #scheduleUsageFlush (): void {
    this.#usageFlush ??= setImmediate(() => {
      this.#usageFlush = null
      this.flushUsage()
    })
  }

  /**
   * Writes the queued samples and periods now, in one transaction (fsync'd when it holds a period),
   * then tells each period's caller. Never throws: a bad sample or a refused period writes nothing of
   * itself and costs no other its place; should the whole transaction fail, each part is written on
   * its own. Samples that still fail are logged and dropped (a lost sample loses detail, never billed
   * time); a period that fails goes to its `done.failed`.
   */
  flushUsage (): void {
    if (this.#usageFlush !== null) clearImmediate(this.#usageFlush)
    this.#usageFlush = null
    const groups = this.#queuedSamples
    const periods = this.#queuedPeriods
    if (groups.length === 0 && periods.length === 0) return
    this.#queuedSamples = []
    this.#queuedPeriods = []
    let results: Array<UsagePeriodRecord | LedgerError>
    try {
      results = this.#run('write queued usage', ({ db, s, durable, relaxed }) => {
        // A statement that fails writes nothing and leaves the transaction open, so each sample and
        // each period is tried on its own; an error that ends the transaction itself (SQLite rolls
        // back on a full disk or I/O error) is rethrown, and everything is written again below.
        const refused = (err: unknown): LedgerError => {
          if (!db.inTransaction) throw err
          return toLedgerError(err, 'write queued usage')
        }
        return (periods.length === 0 ? relaxed : durable)(() => {
          for (const samples of groups) {
            let lost = 0
            let error: LedgerError | undefined
            for (const x of samples) {
              try {
                this.#insertSample(s, x)
              } catch (err) {
                const refusal = refused(err)
                lost++
                error ??= refusal
              }
            }
            if (lost > 0) this.#samplesLost(samples[0]?.leaseId, lost, error)
          }
          // A period is checked by reads, then written by one INSERT.
          return periods.map(({ period }) => {
            try {
              return this.#insertPeriod(s, period)
            } catch (err) {
              return refused(err)
            }
          })
        })
      })
    } catch {
      // The shared transaction failed as a whole (a full disk, a busy database): nothing of it is written.
      for (const samples of groups) {
        try {
          this.appendUsageSamples(samples)
        } catch (err) {
          this.#samplesLost(samples[0]?.leaseId, samples.length, err)
        }
      }
      results = periods.map(({ period }) => {
        try {
          return this.appendUsagePeriod(period)
        } catch (err) {
          return toLedgerError(err, 'append usage period')
        }
      })
    }
    periods.forEach(({ period, done }, i) => {
      const result = results[i]!
      try {
        if (result instanceof LedgerError) done.failed(result)
        else done.written(result)
      } catch (err) {
        this.#logger.warn({ err, leaseId: period.leaseId, periodIndex: period.periodIndex }, 'usage period callback threw')
      }
    })
  }

  #samplesLost (leaseId: string | undefined, count: number, err: unknown): void {
    this.#logger.warn({ err, leaseId, count }, 'usage samples not written')
  }

  /** The sample with the highest offset, or null. */
  lastSample (leaseId: string): UsageSampleRecord | null {
    this.flushUsage()
    return this.#run('read last sample', ({ s }) => {
      const row = s.lastSample.get(leaseId) as UsageSampleRow | undefined
      return row === undefined ? null : usageSampleFromRow(row)
    })
  }

  /** Samples with `fromOffsetMs <= offsetMs < toOffsetMs`, by offset. */
  samplesForPeriod (leaseId: string, fromOffsetMs: number, toOffsetMs: number): UsageSampleRecord[] {
    this.flushUsage()
    return this.#run('read samples', ({ s }) =>
      (s.samplesForPeriod.all(leaseId, fromOffsetMs, toOffsetMs) as UsageSampleRow[]).map(usageSampleFromRow))
  }

  /**
   * Appends a closed usage period. It must extend the lease's periods exactly: index = last + 1 (0
   * first), start = last end (0 first), cumulative = last cumulative + amount, and nothing after a
   * final period. Throws UsagePeriodOrderError otherwise, having written nothing.
   */
  appendUsagePeriod (period: UsagePeriodInput): UsagePeriodRecord {
    this.flushUsage()
    return this.#run('append usage period', ({ s, durable }) => durable(() => this.#insertPeriod(s, period)))
  }

  /** Checks and inserts one period; call inside a transaction. */
  #insertPeriod (s: Statements, period: UsagePeriodInput): UsagePeriodRecord {
    const texts = {
      gpuMs: moneyToText(period.gpuMs, 'gpuMs'),
      amount: moneyToText(period.amount, 'amount'),
      cumulative: moneyToText(period.cumulativeAmount, 'cumulativeAmount'),
      energy: optionalMoneyToText(period.energyMj, 'energyMj')
    }
    checkJsonText(period.report, 'report')
    const id = period.leaseId
    const lease = s.leaseState.get(id) as { state: LeaseState } | undefined
    if (lease === undefined) throw new NotFoundError('lease', id)
    if (!METERED_STATES.includes(lease.state)) {
      throw new UsagePeriodOrderError(id, 'LEASE_NOT_METERED', `a ${lease.state} lease has no usage`)
    }
    const last = s.lastPeriodEnd.get(id) as Pick<UsagePeriodRow, 'period_index' | 'end_offset_ms' | 'cumulative_amount' | 'final'> | undefined
    if (last?.final === 1) throw new UsagePeriodOrderError(id, 'AFTER_FINAL', `period ${last.period_index} was final`)
    const index = last === undefined ? 0 : last.period_index + 1
    const start = last === undefined ? 0 : last.end_offset_ms
    const cumulative = (last === undefined ? 0n : moneyFromText(last.cumulative_amount, 'cumulative_amount')) + period.amount
    if (period.periodIndex !== index) {
      throw new UsagePeriodOrderError(id, 'INDEX_GAP', `expected period ${index}, got ${period.periodIndex}`)
    }
    if (period.startOffsetMs !== start) {
      throw new UsagePeriodOrderError(id, 'NOT_CONTIGUOUS', `period ${index} must start at ${start}, not ${period.startOffsetMs}`)
    }
    if (!(period.endOffsetMs > period.startOffsetMs)) {
      throw new UsagePeriodOrderError(id, 'EMPTY_PERIOD', `period ${index} ends at ${period.endOffsetMs}, not after its start`)
    }
    if (period.cumulativeAmount !== cumulative) {
      throw new UsagePeriodOrderError(id, 'CUMULATIVE_MISMATCH', `cumulative amount must be ${cumulative}, not ${period.cumulativeAmount}`)
    }
    const now = this.#clock.now()
    s.insertPeriod.run(id, index, start, period.endOffsetMs, texts.gpuMs, texts.amount, texts.cumulative,
      period.avgUtilizationBp, period.peakMemoryMiB, texts.energy, period.final ? 1 : 0, period.report, now)
    return { ...period, createdAt: now }
  }

  usagePeriods (leaseId: string): UsagePeriodRecord[] {
    this.flushUsage()
    return this.#run('read usage periods', ({ s }) => (s.periods.all(leaseId) as UsagePeriodRow[]).map(usagePeriodFromRow))
  }

  lastUsagePeriod (leaseId: string): UsagePeriodRecord | null {
    this.flushUsage()
    return this.#run('read last usage period', ({ s }) => {
      const row = s.lastPeriod.get(leaseId) as UsagePeriodRow | undefined
      return row === undefined ? null : usagePeriodFromRow(row)
    })
  }

  // ── Vouchers and settlements ──────────────────────────────────────────────────────────────────────

  /**
   * Stores a voucher (its signature already verified by the caller). Its sequence must exceed, and its
   * cumulative amount be at least, the newest one's; else VoucherOrderError. Returns false, writing
   * nothing, for an exact duplicate of a stored voucher (a renter resending).
   */
  recordVoucher (voucher: VoucherInput): boolean {
    return this.#run('record voucher', ({ s, durable }) => {
      const { leaseId, sequence } = voucher
      if (typeof sequence !== 'bigint' || sequence < 0n || sequence > MAX_VOUCHER_SEQUENCE) {
        throw new InvalidInputError('sequence', 'must be a uint64 bigint')
      }
      const cumulative = moneyToText(voucher.cumulativeAmount, 'cumulativeAmount')
      checkJsonText(voucher.body, 'body')
      const sequenceText = sequence.toString(10).padStart(VOUCHER_SEQUENCE_DIGITS, '0')
      return durable(() => {
        if (s.leaseState.get(leaseId) === undefined) throw new NotFoundError('lease', leaseId)
        const lastRow = s.latestVoucher.get(leaseId) as VoucherRow | undefined
        if (lastRow !== undefined) {
          const last = voucherFromRow(lastRow)
          if (last.sequence === sequence && last.signature === voucher.signature &&
            last.cumulativeAmount === voucher.cumulativeAmount) return false
          if (sequence <= last.sequence) {
            throw new VoucherOrderError(leaseId, 'SEQUENCE_NOT_INCREASING', `sequence ${sequence} is not above ${last.sequence}`)
          }
          if (voucher.cumulativeAmount < last.cumulativeAmount) {
            throw new VoucherOrderError(leaseId, 'CUMULATIVE_DECREASING',
              `cumulative amount ${voucher.cumulativeAmount} is below ${last.cumulativeAmount}`)
          }
        }
        s.insertVoucher.run(leaseId, sequenceText, cumulative, voucher.signature, voucher.body, this.#clock.now())
        return true
      })
    })
  }

  /** The voucher with the highest sequence, or null. Only it matters: each supersedes the last. */
  latestVoucher (leaseId: string): VoucherRecord | null {
    return this.#run('read latest voucher', ({ s }) => {
      const row = s.latestVoucher.get(leaseId) as VoucherRow | undefined
      return row === undefined ? null : voucherFromRow(row)
    })
  }

  vouchers (leaseId: string): VoucherRecord[] {
    return this.#run('read vouchers', ({ s }) => (s.vouchers.all(leaseId) as VoucherRow[]).map(voucherFromRow))
  }

  recordSettlement (input: SettlementInput): SettlementRecord {
    return this.#run('record settlement', ({ s, durable }) => {
      const total = moneyToText(input.total, 'total')
      const batch = input.batch === null ? null : checkJsonText(input.batch, 'batch')
      return durable(() => {
        const now = this.#clock.now()
        const info = s.insertSettlement.run(input.kind, now, now, JSON.stringify(input.leaseIds), total, input.txHash,
          batch, input.state)
        return settlementFromRow(s.getSettlement.get(info.lastInsertRowid) as SettlementRow)
      })
    })
  }

  /** Moves a settlement on (submitted, confirmed, failed), recording its transaction hash once known. */
  updateSettlement (id: number, state: SettlementState, txHash: string | null = null): SettlementRecord {
    return this.#run('update settlement', ({ s, durable }) => durable(() => {
      if (s.updateSettlement.run(state, txHash, this.#clock.now(), id).changes === 0) {
        throw new NotFoundError('settlement', String(id))
      }
      return settlementFromRow(s.getSettlement.get(id) as SettlementRow)
    }))
  }

  listSettlements (): SettlementRecord[] {
    return this.#run('list settlements', ({ s }) => (s.listSettlements.all() as SettlementRow[]).map(settlementFromRow))
  }

  // ── Settlement ────────────────────────────────────────────────────────────────────────────────────

  /**
   * The newest voucher of every lease that is above what was settled for it: on-chain, what the
   * escrow paid the lease (as last recorded from the chain); off-chain, what was exported. Leases in
   * an unfinished (pending or submitted) on-chain batch are left out. Oldest voucher first.
   */
  unsettledVouchers (options: UnsettledVouchersOptions): UnsettledVoucher[] {
    return this.#run('read unsettled vouchers', ({ settlements }) => settlements.unsettledVouchers(options))
  }

  /** Records an on-chain batch and its entries as `pending`, durably, in one transaction: before sending. */
  recordOnchainBatch (entries: readonly SettlementEntryInput[], batch: string | null = null): SettlementBatchRecord {
    return this.#run('record settlement batch', ({ settlements }) => settlements.recordOnchainBatch(entries, batch))
  }

  /** pending → submitted, with the transaction hash (recorded before the transaction is broadcast). */
  markSettlementSubmitted (id: number, txHash: string): SettlementRecord {
    return this.#run('mark settlement submitted', ({ settlements }) => settlements.markSubmitted(id, txHash))
  }

  /**
   * → confirmed, with each entry's paid amount and code, and each lease's redeemed total (the larger of
   * what was recorded and what the escrow reported), in one transaction. Entries not given are FAILED.
   */
  confirmSettlement (id: number, input: ConfirmSettlementInput): SettlementBatchRecord {
    return this.#run('confirm settlement', ({ settlements }) => settlements.confirm(id, input))
  }

  /** → failed, with the reason; its entries paid nothing. */
  failSettlement (id: number, error: string, txHash: string | null = null): SettlementBatchRecord {
    return this.#run('fail settlement', ({ settlements }) => settlements.fail(id, error, txHash))
  }

  /** Sets what each lease was paid on chain to the chain's own figure (the truth), in one transaction. */
  recordChainPaid (paid: readonly ChainPaid[], txHash: string | null = null): void {
    this.#run('record chain paid', ({ settlements }) => { settlements.recordChainPaid(paid, txHash) })
  }

  /** Records an off-chain export (state `exported`) and marks its leases exported, in one transaction. */
  recordOffchainExport (entries: readonly SettlementEntryInput[], batch: string): SettlementBatchRecord {
    return this.#run('record off-chain export', ({ settlements }) => settlements.recordOffchainExport(entries, batch))
  }

  /** Batches of that kind left `pending` or `submitted` (by a crash, or still in flight), oldest first. */
  unfinishedSettlements (kind: SettlementKind = 'onchain'): SettlementBatchRecord[] {
    return this.#run('read unfinished settlements', ({ settlements }) => settlements.unfinished(kind))
  }

  settlementBatch (id: number): SettlementBatchRecord | null {
    return this.#run('read settlement', ({ settlements }) => settlements.batch(id))
  }

  /** Per chain and token: accrued, vouchered, exported, redeemed, outstanding, and who owes it. */
  earnings (options: EarningsOptions = {}): TokenEarnings[] {
    return this.#run('read earnings', ({ settlements }) => settlements.earnings(options))
  }

  /** What a renter owes at one escrow and token and the escrow has not paid yet (for escrow checks). */
  renterExposure (options: RenterExposureOptions): RenterExposure {
    return this.#run('read renter exposure', ({ settlements }) => settlements.renterExposure(options))
  }

  /** One lease's settlement figures; null when there is no such lease. */
  leaseSettlement (leaseId: string): LeaseSettlementView | null {
    return this.#run('read lease settlement', ({ settlements }) => settlements.leaseView(leaseId))
  }

  // ── Internals ─────────────────────────────────────────────────────────────────────────────────────

  /** Inside a transaction: checks and applies one transition, its event and any release of GPUs. */
  #transition (s: Statements, leaseId: string, to: LeaseState, reason: string, detail: string | null, extra: TransitionExtra): void {
    const row = s.leaseState.get(leaseId) as { state: LeaseState } | undefined
    if (row === undefined) throw new NotFoundError('lease', leaseId)
    if (!canTransition(row.state, to)) throw new InvalidTransitionError(leaseId, row.state, to)
    const now = this.#clock.now()
    const ended = isEndedLeaseState(to)
    if (ended) s.releaseReservations.run(leaseId)
    s.updateLeaseState.run({
      leaseId,
      to,
      reason,
      now,
      startedAt: to === 'running' ? extra.startedAt ?? now : null,
      endedAt: ended ? extra.endedAt ?? now : null,
      setExitCode: extra.exitCode === undefined ? 0 : 1,
      exitCode: extra.exitCode ?? null
    })
    s.insertEvent.run(leaseId, now, row.state, to, reason, detail)
  }

  /** After the commit: a listener that throws is logged and does not undo or fail the write. */
  #capacityChanged (leaseId: string, state: LeaseState): void {
    try {
      this.emit('capacity-changed', { leaseId, state })
    } catch (err) {
      this.#logger.warn({ err, leaseId }, 'a capacity-changed listener failed')
    }
  }

  /** Runs `fn` on the open database, mapping every third-party error to a ledger error. */
  #run<T>(what: string, fn: (open: Open) => T): T {
    const open = this.#open
    if (open === null) throw new LedgerClosedError()
    try {
      return fn(open)
    } catch (err) {
      throw toLedgerError(err, what)
    }
  }
}

/** Creates a ledger and opens it. */
export function openLedger (path: string, options: LedgerOptions = {}): Ledger {
  const ledger = new Ledger(path, options)
  ledger.open()
  return ledger
}
