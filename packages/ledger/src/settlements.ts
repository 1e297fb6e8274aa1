import type Database from 'better-sqlite3'
import { ZERO_ADDRESS, type Clock } from '@gpumesh/protocol'
import { VOUCHER_SEQUENCE_DIGITS } from './constants.js'
import { InvalidInputError, NotFoundError } from './errors.js'
import { checkJsonText, moneyFromText, moneyToText, optionalMoneyFromText, optionalMoneyToText } from './money.js'
import { leaseFromRow, settlementFromRow, voucherFromRow } from './rows.js'
import type { LeaseRow, SettlementRow, VoucherRow } from './rows.js'
import { LEASE_COLUMNS } from './statements.js'
import type {
  Address, ChainPaid, ConfirmSettlementInput, EarningsFigures, EarningsOptions, LeaseSettlementView,
  RenterEarnings, RenterExposure, RenterExposureOptions, SettlementBatchRecord, SettlementEntryInput, SettlementEntryRecord, SettlementKind,
  SettlementRecord, SettlementState, TokenEarnings, UnsettledVoucher, UnsettledVouchersOptions
} from './types.js'

/**
 * Settlement bookkeeping: batches and their entries, and per lease what was redeemed on chain and
 * exported off-chain. Internal to the package; `Ledger` exposes it.
 *
 * An on-chain batch lives `pending` (recorded before anything is sent) → `submitted` (its transaction
 * hash, recorded before the transaction is broadcast) → `confirmed` (per-entry results from the
 * receipt) or `failed`. An off-chain batch is born `exported`. A lease in a `pending` or `submitted`
 * batch is not offered for another batch until that one is resolved.
 */

const SQL = {
  newestVouchers: `SELECT v.*, COALESCE(ls.redeemed_amount, '0') AS redeemed, COALESCE(ls.exported_amount, '0') AS exported
    FROM leases l
    JOIN vouchers v ON v.lease_id = l.lease_id
      AND v.sequence = (SELECT MAX(sequence) FROM vouchers WHERE lease_id = l.lease_id)
    LEFT JOIN lease_settlement ls ON ls.lease_id = l.lease_id
    WHERE ((@kind = 'offchain' AND l.escrow = '${ZERO_ADDRESS}')
        OR (@kind = 'onchain' AND l.escrow <> '${ZERO_ADDRESS}' AND (@escrow IS NULL OR lower(l.escrow) = lower(@escrow))))
      AND v.received_at >= @since
      AND NOT EXISTS (SELECT 1 FROM settlement_entries e JOIN settlements st ON st.id = e.settlement_id
        WHERE e.lease_id = l.lease_id AND st.state IN ('pending', 'submitted'))
    ORDER BY v.received_at, l.lease_id`,
  lease: `SELECT ${LEASE_COLUMNS} FROM leases l WHERE l.lease_id = ?`,
  insertSettlement: `INSERT INTO settlements (kind, created_at, updated_at, lease_ids, total, tx_hash, batch, state)
    VALUES (?, ?, ?, ?, ?, NULL, ?, ?)`,
  insertEntry: `INSERT INTO settlement_entries (settlement_id, lease_id, sequence, cumulative_amount, paid_amount, code)
    VALUES (?, ?, ?, ?, ?, ?)`,
  getSettlement: 'SELECT * FROM settlements WHERE id = ?',
  unfinished: `SELECT * FROM settlements WHERE kind = ? AND state IN ('pending', 'submitted') ORDER BY id`,
  entries: 'SELECT * FROM settlement_entries WHERE settlement_id = ? ORDER BY rowid',
  setSubmitted: `UPDATE settlements SET state = 'submitted', tx_hash = ?, updated_at = ? WHERE id = ?`,
  setConfirmed: `UPDATE settlements SET state = 'confirmed', tx_hash = ?, block_number = ?, gas_used = ?, error = NULL,
    updated_at = ? WHERE id = ?`,
  setFailed: `UPDATE settlements SET state = 'failed', tx_hash = COALESCE(?, tx_hash), error = ?, updated_at = ? WHERE id = ?`,
  setEntryOutcome: `UPDATE settlement_entries SET paid_amount = ?, code = ? WHERE settlement_id = ? AND lease_id = ?`,
  failOpenEntries: `UPDATE settlement_entries SET paid_amount = '0', code = 'FAILED' WHERE settlement_id = ? AND paid_amount IS NULL`,
  leaseSettlement: 'SELECT * FROM lease_settlement WHERE lease_id = ?',
  upsertRedeemed: `INSERT INTO lease_settlement (lease_id, redeemed_amount, last_settlement_id, last_tx_hash, updated_at)
    VALUES (@leaseId, @redeemed, @settlementId, @txHash, @now)
    ON CONFLICT (lease_id) DO UPDATE SET redeemed_amount = excluded.redeemed_amount,
      last_settlement_id = COALESCE(excluded.last_settlement_id, last_settlement_id),
      last_tx_hash = COALESCE(excluded.last_tx_hash, last_tx_hash), updated_at = excluded.updated_at`,
  upsertExported: `INSERT INTO lease_settlement (lease_id, exported_amount, last_settlement_id, updated_at)
    VALUES (@leaseId, @exported, @settlementId, @now)
    ON CONFLICT (lease_id) DO UPDATE SET exported_amount = excluded.exported_amount,
      last_settlement_id = excluded.last_settlement_id, updated_at = excluded.updated_at`,
  earnings: `SELECT l.lease_id, l.renter, l.token, l.chain_id,
      (SELECT cumulative_amount FROM usage_periods WHERE lease_id = l.lease_id ORDER BY period_index DESC LIMIT 1) AS accrued,
      (SELECT cumulative_amount FROM vouchers WHERE lease_id = l.lease_id ORDER BY sequence DESC LIMIT 1) AS vouchered,
      ls.redeemed_amount AS redeemed, ls.exported_amount AS exported
    FROM leases l LEFT JOIN lease_settlement ls ON ls.lease_id = l.lease_id
    WHERE l.created_at >= ? AND l.state NOT IN ('proposed', 'rejected')`,
  exposure: `SELECT
      (SELECT cumulative_amount FROM usage_periods WHERE lease_id = l.lease_id ORDER BY period_index DESC LIMIT 1) AS accrued,
      (SELECT cumulative_amount FROM vouchers WHERE lease_id = l.lease_id ORDER BY sequence DESC LIMIT 1) AS vouchered,
      ls.redeemed_amount AS redeemed
    FROM leases l LEFT JOIN lease_settlement ls ON ls.lease_id = l.lease_id
    WHERE lower(l.escrow) = lower(@escrow) AND lower(l.renter) = lower(@renter) AND lower(l.token) = lower(@token)
      AND l.state NOT IN ('proposed', 'rejected')`,
  leaseView: `SELECT l.lease_id, l.escrow,
      (SELECT cumulative_amount FROM usage_periods WHERE lease_id = l.lease_id ORDER BY period_index DESC LIMIT 1) AS accrued,
      (SELECT cumulative_amount FROM vouchers WHERE lease_id = l.lease_id ORDER BY sequence DESC LIMIT 1) AS vouchered,
      (SELECT sequence FROM vouchers WHERE lease_id = l.lease_id ORDER BY sequence DESC LIMIT 1) AS voucher_sequence,
      ls.redeemed_amount AS redeemed, ls.exported_amount AS exported, ls.last_settlement_id, ls.last_tx_hash, ls.updated_at,
      st.state AS last_state
    FROM leases l LEFT JOIN lease_settlement ls ON ls.lease_id = l.lease_id
      LEFT JOIN settlements st ON st.id = (SELECT MAX(settlement_id) FROM settlement_entries WHERE lease_id = l.lease_id)
    WHERE l.lease_id = ?`
} as const

interface EntryRow {
  settlement_id: number
  lease_id: string
  sequence: string
  cumulative_amount: string
  paid_amount: string | null
  code: string | null
}

interface LeaseSettlementRow {
  lease_id: string
  redeemed_amount: string
  exported_amount: string
  last_settlement_id: number | null
  last_tx_hash: string | null
  updated_at: number
}

const max = (a: bigint, b: bigint): bigint => a > b ? a : b

function sequenceText (sequence: bigint): string {
  if (typeof sequence !== 'bigint' || sequence < 0n || sequence >= 1n << 64n) throw new InvalidInputError('sequence', 'expected a uint64 bigint')
  return sequence.toString(10).padStart(VOUCHER_SEQUENCE_DIGITS, '0')
}

function entryFromRow (row: EntryRow): SettlementEntryRecord {
  return {
    settlementId: row.settlement_id,
    leaseId: row.lease_id,
    sequence: BigInt(row.sequence),
    cumulativeAmount: moneyFromText(row.cumulative_amount, 'cumulative_amount'),
    paidAmount: optionalMoneyFromText(row.paid_amount, 'paid_amount'),
    code: row.code
  }
}

const emptyFigures = (): EarningsFigures => ({ accrued: 0n, vouchered: 0n, exported: 0n, redeemed: 0n, outstanding: 0n, unvouchered: 0n, leases: 0 })

function addFigures (into: EarningsFigures, lease: Omit<EarningsFigures, 'leases'>): void {
  into.accrued += lease.accrued
  into.vouchered += lease.vouchered
  into.exported += lease.exported
  into.redeemed += lease.redeemed
  into.outstanding += lease.outstanding
  into.unvouchered += lease.unvouchered
  into.leases += 1
}

/** Per-lease figures from its four amounts. */
function leaseFigures (accrued: bigint, vouchered: bigint, redeemed: bigint, exported: bigint): Omit<EarningsFigures, 'leases'> {
  const settled = redeemed + exported
  const owed = max(accrued, vouchered)
  return { accrued, vouchered, redeemed, exported, outstanding: max(0n, owed - settled), unvouchered: max(0n, accrued - vouchered) }
}

type Statements = { readonly [K in keyof typeof SQL]: Database.Statement }

export class SettlementStore {
  readonly #s: Statements
  readonly #durable: <T>(fn: () => T) => T
  readonly #clock: Pick<Clock, 'now'>

  constructor (db: Database.Database, durable: <T>(fn: () => T) => T, clock: Pick<Clock, 'now'>) {
    const statements: Partial<Record<keyof typeof SQL, Database.Statement>> = {}
    for (const [name, sql] of Object.entries(SQL) as Array<[keyof typeof SQL, string]>) statements[name] = db.prepare(sql)
    this.#s = statements as Statements
    this.#durable = durable
    this.#clock = clock
  }

  unsettledVouchers (options: UnsettledVouchersOptions): UnsettledVoucher[] {
    const minAmount = options.minAmount ?? 1n
    if (typeof minAmount !== 'bigint' || minAmount < 0n) throw new InvalidInputError('minAmount', 'expected a non-negative bigint')
    const rows = this.#s.newestVouchers.all({
      kind: options.kind,
      escrow: options.escrow ?? null,
      since: options.since ?? 0
    }) as Array<VoucherRow & { redeemed: string, exported: string }>
    const found: UnsettledVoucher[] = []
    for (const row of rows) {
      const voucher = voucherFromRow(row)
      const settled = moneyFromText(options.kind === 'onchain' ? row.redeemed : row.exported, 'settled')
      const unsettled = voucher.cumulativeAmount - settled
      if (unsettled <= 0n || unsettled < minAmount) continue
      const lease = leaseFromRow(this.#s.lease.get(row.lease_id) as LeaseRow)
      found.push({ lease, voucher, settled, unsettled })
    }
    return found
  }

  recordOnchainBatch (entries: readonly SettlementEntryInput[], batch: string | null): SettlementBatchRecord {
    return this.#durable(() => {
      const id = this.#insertBatch('onchain', 'pending', entries, batch, (leaseId) => this.#settled(leaseId).redeemed)
      for (const entry of entries) {
        this.#s.insertEntry.run(id, entry.leaseId, sequenceText(entry.sequence), moneyToText(entry.cumulativeAmount, 'cumulativeAmount'), null, null)
      }
      return this.#batch(id)
    })
  }

  markSubmitted (id: number, txHash: string): SettlementRecord {
    return this.#durable(() => {
      this.#expectState(id, ['pending', 'submitted'], 'submitted')
      this.#s.setSubmitted.run(txHash, this.#clock.now(), id)
      return this.#batch(id)
    })
  }

  confirm (id: number, input: ConfirmSettlementInput): SettlementBatchRecord {
    return this.#durable(() => {
      this.#expectState(id, ['pending', 'submitted', 'failed'], 'confirmed')
      const now = this.#clock.now()
      this.#s.setConfirmed.run(input.txHash, input.blockNumber, optionalMoneyToText(input.gasUsed, 'gasUsed'), now, id)
      for (const outcome of input.entries) {
        const changed = this.#s.setEntryOutcome.run(moneyToText(outcome.paidAmount, 'paidAmount'), outcome.code, id, outcome.leaseId).changes
        if (changed === 0) throw new InvalidInputError('entries', `lease ${outcome.leaseId} is not in settlement ${id}`)
        const current = this.#settled(outcome.leaseId).redeemed
        const redeemed = outcome.redeemedTotal ?? current
        this.#s.upsertRedeemed.run({ leaseId: outcome.leaseId, redeemed: moneyToText(max(current, redeemed), 'redeemed'), settlementId: id, txHash: input.txHash, now })
      }
      this.#s.failOpenEntries.run(id)
      return this.#batch(id)
    })
  }

  fail (id: number, error: string, txHash: string | null): SettlementBatchRecord {
    return this.#durable(() => {
      this.#expectState(id, ['pending', 'submitted'], 'failed')
      this.#s.setFailed.run(txHash, error, this.#clock.now(), id)
      this.#s.failOpenEntries.run(id)
      return this.#batch(id)
    })
  }

  recordChainPaid (paid: readonly ChainPaid[], txHash: string | null): void {
    this.#durable(() => {
      const now = this.#clock.now()
      for (const { leaseId, redeemed } of paid) {
        this.#s.upsertRedeemed.run({ leaseId, redeemed: moneyToText(redeemed, 'redeemed'), settlementId: null, txHash, now })
      }
    })
  }

  recordOffchainExport (entries: readonly SettlementEntryInput[], batch: string): SettlementBatchRecord {
    checkJsonText(batch, 'batch')
    return this.#durable(() => {
      const id = this.#insertBatch('offchain', 'exported', entries, batch, (leaseId) => this.#settled(leaseId).exported)
      const now = this.#clock.now()
      for (const entry of entries) {
        const before = this.#settled(entry.leaseId).exported
        const cumulative = moneyToText(entry.cumulativeAmount, 'cumulativeAmount')
        this.#s.insertEntry.run(id, entry.leaseId, sequenceText(entry.sequence), cumulative,
          moneyToText(max(0n, entry.cumulativeAmount - before), 'paidAmount'), 'EXPORTED')
        if (entry.cumulativeAmount > before) this.#s.upsertExported.run({ leaseId: entry.leaseId, exported: cumulative, settlementId: id, now })
      }
      return this.#batch(id)
    })
  }

  unfinished (kind: SettlementKind): SettlementBatchRecord[] {
    return (this.#s.unfinished.all(kind) as SettlementRow[]).map((row) => this.#withEntries(settlementFromRow(row)))
  }

  batch (id: number): SettlementBatchRecord | null {
    const row = this.#s.getSettlement.get(id) as SettlementRow | undefined
    return row === undefined ? null : this.#withEntries(settlementFromRow(row))
  }

  earnings (options: EarningsOptions): TokenEarnings[] {
    const rows = this.#s.earnings.all(options.since ?? 0) as Array<{
      lease_id: string, renter: string, token: string, chain_id: string, accrued: string | null, vouchered: string | null,
      redeemed: string | null, exported: string | null
    }>
    const byToken = new Map<string, TokenEarnings & { byRenter: Map<string, RenterEarnings> }>()
    for (const row of rows) {
      const figures = leaseFigures(
        moneyFromText(row.accrued ?? '0', 'accrued'), moneyFromText(row.vouchered ?? '0', 'vouchered'),
        moneyFromText(row.redeemed ?? '0', 'redeemed'), moneyFromText(row.exported ?? '0', 'exported'))
      const key = `${row.chain_id}:${row.token.toLowerCase()}`
      let token = byToken.get(key)
      if (token === undefined) {
        token = { chainId: BigInt(row.chain_id), token: row.token as Address, ...emptyFigures(), renters: [], byRenter: new Map() }
        byToken.set(key, token)
      }
      addFigures(token, figures)
      const renterKey = row.renter.toLowerCase()
      let renter = token.byRenter.get(renterKey)
      if (renter === undefined) {
        renter = { renter: row.renter as Address, ...emptyFigures() }
        token.byRenter.set(renterKey, renter)
      }
      addFigures(renter, figures)
    }
    return [...byToken.values()].map(({ byRenter, ...token }) => ({
      ...token,
      renters: [...byRenter.values()].filter((r) => r.outstanding > 0n || r.unvouchered > 0n)
        .sort((a, b) => a.outstanding === b.outstanding ? a.renter.localeCompare(b.renter) : (a.outstanding > b.outstanding ? -1 : 1))
    }))
  }

  renterExposure (options: RenterExposureOptions): RenterExposure {
    const rows = this.#s.exposure.all({ escrow: options.escrow, renter: options.renter, token: options.token }) as Array<{
      accrued: string | null, vouchered: string | null, redeemed: string | null
    }>
    const exposure: RenterExposure = { unredeemedVouchered: 0n, unredeemedOwed: 0n, leases: 0 }
    for (const row of rows) {
      const accrued = moneyFromText(row.accrued ?? '0', 'accrued')
      const vouchered = moneyFromText(row.vouchered ?? '0', 'vouchered')
      const redeemed = moneyFromText(row.redeemed ?? '0', 'redeemed')
      exposure.unredeemedVouchered += max(0n, vouchered - redeemed)
      exposure.unredeemedOwed += max(0n, max(accrued, vouchered) - redeemed)
      exposure.leases += 1
    }
    return exposure
  }

  leaseView (leaseId: string): LeaseSettlementView | null {
    const row = this.#s.leaseView.get(leaseId) as {
      lease_id: string, escrow: string, accrued: string | null, vouchered: string | null, voucher_sequence: string | null,
      redeemed: string | null, exported: string | null, last_settlement_id: number | null, last_tx_hash: string | null,
      updated_at: number | null, last_state: string | null
    } | undefined
    if (row === undefined) return null
    const figures = leaseFigures(
      moneyFromText(row.accrued ?? '0', 'accrued'), moneyFromText(row.vouchered ?? '0', 'vouchered'),
      moneyFromText(row.redeemed ?? '0', 'redeemed'), moneyFromText(row.exported ?? '0', 'exported'))
    return {
      leaseId: row.lease_id,
      kind: row.escrow === ZERO_ADDRESS ? 'offchain' : 'onchain',
      escrow: row.escrow as Address,
      accrued: figures.accrued,
      vouchered: figures.vouchered,
      voucherSequence: row.voucher_sequence === null ? null : BigInt(row.voucher_sequence),
      redeemed: figures.redeemed,
      exported: figures.exported,
      outstanding: figures.outstanding,
      lastSettlementId: row.last_settlement_id,
      lastSettlementState: row.last_state as SettlementState | null,
      lastTxHash: row.last_tx_hash,
      updatedAt: row.updated_at
    }
  }

  #insertBatch (kind: SettlementKind, state: SettlementState, entries: readonly SettlementEntryInput[], batch: string | null,
    settled: (leaseId: string) => bigint): number {
    if (entries.length === 0) throw new InvalidInputError('entries', 'a settlement batch needs at least one entry')
    const ids = new Set<string>()
    let total = 0n
    for (const entry of entries) {
      if (ids.has(entry.leaseId)) throw new InvalidInputError('entries', `lease ${entry.leaseId} appears twice`)
      ids.add(entry.leaseId)
      if (this.#s.lease.get(entry.leaseId) === undefined) throw new NotFoundError('lease', entry.leaseId)
      total += max(0n, moneyFromText(moneyToText(entry.cumulativeAmount, 'cumulativeAmount'), 'cumulativeAmount') - settled(entry.leaseId))
    }
    const now = this.#clock.now()
    const info = this.#s.insertSettlement.run(kind, now, now, JSON.stringify([...ids]), moneyToText(total, 'total'),
      batch === null ? null : checkJsonText(batch, 'batch'), state)
    return Number(info.lastInsertRowid)
  }

  #settled (leaseId: string): { redeemed: bigint, exported: bigint } {
    const row = this.#s.leaseSettlement.get(leaseId) as LeaseSettlementRow | undefined
    if (row === undefined) return { redeemed: 0n, exported: 0n }
    return { redeemed: moneyFromText(row.redeemed_amount, 'redeemed_amount'), exported: moneyFromText(row.exported_amount, 'exported_amount') }
  }

  #expectState (id: number, from: readonly SettlementState[], to: SettlementState): void {
    const row = this.#s.getSettlement.get(id) as SettlementRow | undefined
    if (row === undefined) throw new NotFoundError('settlement', String(id))
    if (!from.includes(row.state as SettlementState)) throw new InvalidInputError('state', `settlement ${id} is ${row.state}; it cannot become ${to}`)
  }

  #batch (id: number): SettlementBatchRecord {
    return this.#withEntries(settlementFromRow(this.#s.getSettlement.get(id) as SettlementRow))
  }

  #withEntries (record: SettlementRecord): SettlementBatchRecord {
    return { ...record, entries: (this.#s.entries.all(record.id) as EntryRow[]).map(entryFromRow) }
  }
}
