import type Database from 'better-sqlite3'

/** Every statement the ledger runs, prepared once when it opens. Internal to the package. */

export const LEASE_COLUMNS = `l.*, (SELECT json_group_array(gpu_uuid) FROM
  (SELECT gpu_uuid FROM lease_gpus WHERE lease_id = l.lease_id ORDER BY position)) AS gpus`

const GPU_COLUMNS = `g.*, r.lease_id AS lease_id, l.state AS lease_state FROM gpus g
  LEFT JOIN active_reservations r ON r.gpu_uuid = g.uuid
  LEFT JOIN leases l ON l.lease_id = r.lease_id`

const SQL = {
  syncFull: 'PRAGMA synchronous = FULL',
  syncNormal: 'PRAGMA synchronous = NORMAL',

  upsertGpu: `INSERT INTO gpus (uuid, idx, vendor, name, class, memory_mib, simulated, first_seen, last_seen, state, problems)
    VALUES (@uuid, @idx, @vendor, @name, @class, @memoryMiB, @simulated, @now, @now, @state, @problems)
    ON CONFLICT (uuid) DO UPDATE SET idx = excluded.idx, vendor = excluded.vendor, name = excluded.name,
      class = excluded.class, memory_mib = excluded.memory_mib, simulated = excluded.simulated,
      last_seen = excluded.last_seen, state = excluded.state, problems = excluded.problems`,
  listGpus: `SELECT ${GPU_COLUMNS} ORDER BY g.idx, g.uuid`,
  gpuAvailability: `SELECT g.state AS state, r.lease_id AS lease_id FROM gpus g
    LEFT JOIN active_reservations r ON r.gpu_uuid = g.uuid WHERE g.uuid = ?`,
  markGpuState: 'UPDATE gpus SET state = ?, problems = ?, last_seen = ? WHERE uuid = ?',

  insertOffer: `INSERT INTO offers (sequence, published_at, expires_at, body, gpus_free)
    VALUES (@sequence, @publishedAt, @expiresAt, @body, @gpusFree)`,
  latestOffer: 'SELECT * FROM offers ORDER BY sequence DESC LIMIT 1',

  insertSeenOrder: 'INSERT OR IGNORE INTO seen_orders (order_id, seen_at, expires_at) VALUES (?, ?, ?)',
  pruneSeenOrders: 'DELETE FROM seen_orders WHERE expires_at < ?',
  leaseByOrder: 'SELECT lease_id FROM leases WHERE order_id = ?',

  insertLease: `INSERT INTO leases (lease_id, order_id, renter, renter_peer_id, matcher_peer_id, provider, token,
      chain_id, price_per_gpu_hour, gpu_class, gpu_count, duration_sec, billing_interval_sec, payment_grace_sec,
      start_deadline, job_hash, terms, escrow, state, state_reason, created_at, updated_at)
    VALUES (@leaseId, @orderId, @renter, @renterPeerId, @matcherPeerId, @provider, @token,
      @chainId, @pricePerGpuHour, @gpuClass, @gpuCount, @durationSec, @billingIntervalSec, @paymentGraceSec,
      @startDeadline, @jobHash, @terms, @escrow, 'accepted', @reason, @now, @now)`,
  insertLeaseGpu: 'INSERT INTO lease_gpus (lease_id, gpu_uuid, position) VALUES (?, ?, ?)',
  insertReservation: 'INSERT INTO active_reservations (gpu_uuid, lease_id) VALUES (?, ?)',
  releaseReservations: 'DELETE FROM active_reservations WHERE lease_id = ?',
  insertEvent: `INSERT INTO lease_events (lease_id, at, from_state, to_state, reason, detail)
    VALUES (?, ?, ?, ?, ?, ?)`,
  leaseState: 'SELECT state FROM leases WHERE lease_id = ?',
  updateLeaseState: `UPDATE leases SET state = @to, state_reason = @reason, updated_at = @now,
      started_at = COALESCE(@startedAt, started_at), ended_at = COALESCE(@endedAt, ended_at),
      exit_code = CASE WHEN @setExitCode THEN @exitCode ELSE exit_code END
    WHERE lease_id = @leaseId`,
  setLeaseTerms: 'UPDATE leases SET terms = ?, updated_at = ? WHERE lease_id = ?',
  leaseTerms: 'SELECT terms FROM leases WHERE lease_id = ?',
  setLeaseJob: `UPDATE leases SET job_pid = ?, job_pid_start_time = ?, job_dir = ?, updated_at = ?
    WHERE lease_id = ?`,
  getLease: `SELECT ${LEASE_COLUMNS} FROM leases l WHERE l.lease_id = ?`,
  listLeases: `SELECT ${LEASE_COLUMNS} FROM leases l ORDER BY l.created_at, l.lease_id`,
  listLeasesByState: `SELECT ${LEASE_COLUMNS} FROM leases l WHERE l.state IN (SELECT value FROM json_each(?))
    ORDER BY l.created_at, l.lease_id`,
  overdueLeases: `SELECT lease_id FROM leases WHERE state = 'accepted' AND start_deadline <= ?
    ORDER BY start_deadline, lease_id`,
  leaseEvents: 'SELECT * FROM lease_events WHERE lease_id = ? ORDER BY id',

  insertRejection: `INSERT INTO rejections (at, order_id, renter, matcher_peer_id, code, message, proposal)
    VALUES (?, ?, ?, ?, ?, ?, ?)`,
  getRejection: 'SELECT * FROM rejections WHERE id = ?',
  listRejections: 'SELECT * FROM rejections WHERE at >= ? ORDER BY id DESC LIMIT ?',
  countLeases: 'SELECT COUNT(*) AS n FROM leases',
  countRejectionsByCode: 'SELECT code, COUNT(*) AS n FROM rejections GROUP BY code ORDER BY code',
  countLeasesByState: 'SELECT state, COUNT(*) AS n FROM leases GROUP BY state ORDER BY state',
  sumGpuMs: 'SELECT CAST(COALESCE(SUM(CAST(gpu_ms AS INTEGER)), 0) AS TEXT) AS total FROM usage_periods',
  countVouchers: 'SELECT COUNT(*) AS n FROM vouchers',
  countSettlementsByState: 'SELECT kind, state, COUNT(*) AS n FROM settlements GROUP BY kind, state ORDER BY kind, state',

  insertSample: `INSERT INTO usage_samples (lease_id, offset_ms, at, gpu_uuid, utilization_percent, memory_used_mib, power_w)
    VALUES (?, ?, ?, ?, ?, ?, ?)`,
  lastSample: 'SELECT * FROM usage_samples WHERE lease_id = ? ORDER BY offset_ms DESC, id DESC LIMIT 1',
  samplesForPeriod: `SELECT * FROM usage_samples WHERE lease_id = ? AND offset_ms >= ? AND offset_ms < ?
    ORDER BY offset_ms, id`,

  insertPeriod: `INSERT INTO usage_periods (lease_id, period_index, start_offset_ms, end_offset_ms, gpu_ms, amount,
      cumulative_amount, avg_utilization_bp, peak_memory_mib, energy_mj, final, report, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  lastPeriod: 'SELECT * FROM usage_periods WHERE lease_id = ? ORDER BY period_index DESC LIMIT 1',
  /** What appending the next period is checked against (not the report text). */
  lastPeriodEnd: `SELECT period_index, end_offset_ms, cumulative_amount, final FROM usage_periods WHERE lease_id = ?
    ORDER BY period_index DESC LIMIT 1`,
  periods: 'SELECT * FROM usage_periods WHERE lease_id = ? ORDER BY period_index',

  insertVoucher: `INSERT INTO vouchers (lease_id, sequence, cumulative_amount, signature, body, received_at)
    VALUES (?, ?, ?, ?, ?, ?)`,
  latestVoucher: 'SELECT * FROM vouchers WHERE lease_id = ? ORDER BY sequence DESC LIMIT 1',
  vouchers: 'SELECT * FROM vouchers WHERE lease_id = ? ORDER BY sequence',

  insertSettlement: `INSERT INTO settlements (kind, created_at, updated_at, lease_ids, total, tx_hash, batch, state)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  updateSettlement: `UPDATE settlements SET state = ?, tx_hash = COALESCE(?, tx_hash), updated_at = ?
    WHERE id = ?`,
  getSettlement: 'SELECT * FROM settlements WHERE id = ?',
  listSettlements: 'SELECT * FROM settlements ORDER BY id',

  getKv: 'SELECT value FROM kv WHERE key = ?',
  setKv: 'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'
} as const

export type Statements = { readonly [K in keyof typeof SQL]: Database.Statement }

export function prepareStatements (db: Database.Database): Statements {
  const statements: Partial<Record<keyof typeof SQL, Database.Statement>> = {}
  for (const [name, sql] of Object.entries(SQL) as Array<[keyof typeof SQL, string]>) {
    statements[name] = db.prepare(sql)
  }
  return statements as Statements
}
