import type Database from 'better-sqlite3'
import { LedgerVersionError } from './errors.js'
import type { LedgerLogger } from './types.js'

/**
 * Schema migrations, keyed on `PRAGMA user_version`: migration i takes the schema from version i to
 * i + 1 and runs in one transaction together with the version bump. A shipped migration is never
 * edited; a change is a new entry at the end.
 *
 * Money columns are TEXT holding a canonical decimal (`MONEY` check), never REAL. Tables are STRICT so
 * SQLite refuses a value of the wrong type instead of converting it.
 */

const money = (col: string): string => `CHECK (${col} <> '' AND ${col} NOT GLOB '*[^0-9]*' AND (${col} = '0' OR ${col} NOT GLOB '0*'))`
const optionalMoney = (col: string): string => `CHECK (${col} IS NULL OR (${col} <> '' AND ${col} NOT GLOB '*[^0-9]*' AND (${col} = '0' OR ${col} NOT GLOB '0*')))`
const appendOnly = (table: string): string => `
CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table}
BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END;
CREATE TRIGGER ${table}_no_delete BEFORE DELETE ON ${table}
BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END;
`

const V1 = `
CREATE TABLE gpus (
  uuid TEXT PRIMARY KEY,
  idx INTEGER NOT NULL,
  vendor TEXT NOT NULL,
  name TEXT NOT NULL,
  class TEXT NOT NULL,
  memory_mib INTEGER NOT NULL,
  simulated INTEGER NOT NULL CHECK (simulated IN (0, 1)),
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  -- The probe's view only; 'reserved' and 'leased' are derived from active_reservations.
  state TEXT NOT NULL CHECK (state IN ('free', 'unhealthy', 'busy', 'gone')),
  problems TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(problems))
) STRICT;

CREATE TABLE offers (
  sequence INTEGER PRIMARY KEY,
  published_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  body TEXT NOT NULL,
  gpus_free INTEGER NOT NULL CHECK (gpus_free >= 0)
) STRICT;

CREATE TABLE leases (
  lease_id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL UNIQUE,
  renter TEXT NOT NULL,
  renter_peer_id TEXT NOT NULL,
  matcher_peer_id TEXT,
  provider TEXT NOT NULL,
  token TEXT NOT NULL,
  chain_id TEXT NOT NULL ${money('chain_id')},
  price_per_gpu_hour TEXT NOT NULL ${money('price_per_gpu_hour')},
  gpu_class TEXT NOT NULL,
  gpu_count INTEGER NOT NULL CHECK (gpu_count > 0),
  duration_sec INTEGER NOT NULL CHECK (duration_sec > 0),
  billing_interval_sec INTEGER NOT NULL CHECK (billing_interval_sec > 0),
  payment_grace_sec INTEGER NOT NULL CHECK (payment_grace_sec >= 0),
  start_deadline INTEGER NOT NULL,
  job_hash TEXT NOT NULL,
  terms TEXT CHECK (terms IS NULL OR json_valid(terms)),
  state TEXT NOT NULL CHECK (state IN ('proposed', 'accepted', 'running', 'completed', 'terminated', 'failed', 'rejected', 'expired')),
  state_reason TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  job_pid INTEGER,
  job_pid_start_time INTEGER,
  job_dir TEXT,
  exit_code INTEGER
) STRICT;
CREATE INDEX leases_state ON leases (state);

-- The state machine, enforced by the database too (the code checks first, with a typed error).
CREATE TRIGGER leases_transition BEFORE UPDATE OF state ON leases
WHEN NEW.state <> OLD.state AND (OLD.state, NEW.state) NOT IN (VALUES
  ('proposed', 'accepted'), ('proposed', 'rejected'),
  ('accepted', 'running'), ('accepted', 'expired'), ('accepted', 'terminated'), ('accepted', 'failed'),
  ('running', 'completed'), ('running', 'terminated'), ('running', 'failed'))
BEGIN SELECT RAISE(ABORT, 'invalid lease transition'); END;

CREATE TABLE lease_gpus (
  lease_id TEXT NOT NULL REFERENCES leases (lease_id),
  gpu_uuid TEXT NOT NULL REFERENCES gpus (uuid),
  position INTEGER NOT NULL,
  PRIMARY KEY (lease_id, gpu_uuid)
) STRICT;
CREATE INDEX lease_gpus_gpu ON lease_gpus (gpu_uuid);

-- One row per GPU held by an accepted or running lease. The primary key is what makes a GPU
-- impossible to hold twice: a second reservation fails by constraint, whatever the code does.
CREATE TABLE active_reservations (
  gpu_uuid TEXT PRIMARY KEY REFERENCES gpus (uuid),
  lease_id TEXT NOT NULL,
  FOREIGN KEY (lease_id, gpu_uuid) REFERENCES lease_gpus (lease_id, gpu_uuid)
) STRICT;
CREATE INDEX active_reservations_lease ON active_reservations (lease_id);

CREATE TRIGGER active_reservations_active_lease BEFORE INSERT ON active_reservations
WHEN (SELECT state FROM leases WHERE lease_id = NEW.lease_id) NOT IN ('accepted', 'running')
BEGIN SELECT RAISE(ABORT, 'only an accepted or running lease holds GPUs'); END;

CREATE TRIGGER leases_ended_hold_nothing AFTER UPDATE OF state ON leases
WHEN NEW.state NOT IN ('accepted', 'running')
  AND EXISTS (SELECT 1 FROM active_reservations WHERE lease_id = NEW.lease_id)
BEGIN SELECT RAISE(ABORT, 'an ended lease still holds GPUs'); END;

CREATE TABLE lease_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lease_id TEXT NOT NULL REFERENCES leases (lease_id),
  at INTEGER NOT NULL,
  from_state TEXT,
  to_state TEXT NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT CHECK (detail IS NULL OR json_valid(detail))
) STRICT;
CREATE INDEX lease_events_lease ON lease_events (lease_id, id);
${appendOnly('lease_events')}

-- Proposals turned down before they became a lease: no lease id, no GPUs, maybe not even valid data.
CREATE TABLE rejections (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  order_id TEXT,
  renter TEXT,
  matcher_peer_id TEXT,
  code TEXT NOT NULL,
  message TEXT NOT NULL,
  proposal TEXT CHECK (proposal IS NULL OR json_valid(proposal))
) STRICT;
CREATE INDEX rejections_at ON rejections (at);

CREATE TABLE seen_orders (
  order_id TEXT PRIMARY KEY,
  seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX seen_orders_expires ON seen_orders (expires_at);

CREATE TABLE usage_samples (
  id INTEGER PRIMARY KEY,
  lease_id TEXT NOT NULL REFERENCES leases (lease_id),
  offset_ms INTEGER NOT NULL CHECK (offset_ms >= 0),
  at INTEGER NOT NULL,
  gpu_uuid TEXT NOT NULL,
  utilization_percent REAL,
  memory_used_mib INTEGER,
  power_w REAL
) STRICT;
CREATE INDEX usage_samples_lease_offset ON usage_samples (lease_id, offset_ms);

CREATE TABLE usage_periods (
  lease_id TEXT NOT NULL REFERENCES leases (lease_id),
  period_index INTEGER NOT NULL CHECK (period_index >= 0),
  start_offset_ms INTEGER NOT NULL CHECK (start_offset_ms >= 0),
  end_offset_ms INTEGER NOT NULL,
  gpu_ms TEXT NOT NULL ${money('gpu_ms')},
  amount TEXT NOT NULL ${money('amount')},
  cumulative_amount TEXT NOT NULL ${money('cumulative_amount')},
  avg_utilization_bp INTEGER CHECK (avg_utilization_bp IS NULL OR avg_utilization_bp BETWEEN 0 AND 10000),
  peak_memory_mib INTEGER,
  energy_mj TEXT ${optionalMoney('energy_mj')},
  final INTEGER NOT NULL CHECK (final IN (0, 1)),
  report TEXT NOT NULL CHECK (json_valid(report)),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (lease_id, period_index),
  CHECK (end_offset_ms > start_offset_ms)
) STRICT;
-- Periods tile the lease: index 0 starts at offset 0, each next one starts where the last ended.
CREATE TRIGGER usage_periods_contiguous BEFORE INSERT ON usage_periods
WHEN NEW.period_index <> COALESCE((SELECT MAX(period_index) + 1 FROM usage_periods WHERE lease_id = NEW.lease_id), 0)
  OR NEW.start_offset_ms <> COALESCE((SELECT end_offset_ms FROM usage_periods
       WHERE lease_id = NEW.lease_id AND period_index = NEW.period_index - 1), 0)
BEGIN SELECT RAISE(ABORT, 'usage periods must be contiguous'); END;
${appendOnly('usage_periods')}

CREATE TABLE vouchers (
  lease_id TEXT NOT NULL REFERENCES leases (lease_id),
  -- uint64, zero-padded to 20 digits so text order is numeric order.
  sequence TEXT NOT NULL CHECK (length(sequence) = 20 AND sequence NOT GLOB '*[^0-9]*'),
  cumulative_amount TEXT NOT NULL ${money('cumulative_amount')},
  signature TEXT NOT NULL,
  body TEXT NOT NULL CHECK (json_valid(body)),
  received_at INTEGER NOT NULL,
  PRIMARY KEY (lease_id, sequence)
) STRICT;
${appendOnly('vouchers')}

CREATE TABLE settlements (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL CHECK (kind IN ('offchain', 'onchain')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  lease_ids TEXT NOT NULL CHECK (json_valid(lease_ids)),
  total TEXT NOT NULL ${money('total')},
  tx_hash TEXT,
  batch TEXT CHECK (batch IS NULL OR json_valid(batch)),
  state TEXT NOT NULL CHECK (state IN ('pending', 'exported', 'submitted', 'confirmed', 'failed'))
) STRICT;

CREATE TABLE kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
`

/**
 * Settlement: which contract settles each lease (zero = off-chain), the entries of each settlement
 * batch, and per lease what was redeemed on chain (the chain's own figure, as last read) and what
 * was exported off-chain.
 */
const V2 = `
ALTER TABLE leases ADD COLUMN escrow TEXT NOT NULL DEFAULT '0x0000000000000000000000000000000000000000'
  CHECK (length(escrow) = 42 AND escrow GLOB '0x*');

ALTER TABLE settlements ADD COLUMN error TEXT;
ALTER TABLE settlements ADD COLUMN block_number INTEGER;
ALTER TABLE settlements ADD COLUMN gas_used TEXT ${optionalMoney('gas_used')};
CREATE INDEX settlements_state ON settlements (kind, state);

-- One row per lease in a batch: the voucher it carried, and once known what it paid and why.
CREATE TABLE settlement_entries (
  settlement_id INTEGER NOT NULL REFERENCES settlements (id),
  lease_id TEXT NOT NULL REFERENCES leases (lease_id),
  sequence TEXT NOT NULL CHECK (length(sequence) = 20 AND sequence NOT GLOB '*[^0-9]*'),
  cumulative_amount TEXT NOT NULL ${money('cumulative_amount')},
  paid_amount TEXT ${optionalMoney('paid_amount')},
  code TEXT,
  PRIMARY KEY (settlement_id, lease_id)
) STRICT;
CREATE INDEX settlement_entries_lease ON settlement_entries (lease_id);

-- Per lease: redeemed = what the escrow says the lease was paid (set from the chain, which is the
-- truth); exported = the cumulative amount of the newest voucher exported off-chain.
CREATE TABLE lease_settlement (
  lease_id TEXT PRIMARY KEY REFERENCES leases (lease_id),
  redeemed_amount TEXT NOT NULL DEFAULT '0' ${money('redeemed_amount')},
  exported_amount TEXT NOT NULL DEFAULT '0' ${money('exported_amount')},
  last_settlement_id INTEGER REFERENCES settlements (id),
  last_tx_hash TEXT,
  updated_at INTEGER NOT NULL
) STRICT;
`

export type Migration = string | ((db: Database.Database) => void)

/** Migration i brings the schema from user_version i to i + 1. */
export const MIGRATIONS: readonly Migration[] = [V1, V2]

/** The schema version this code writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length

export function readSchemaVersion (db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number
}

/** Throws LedgerVersionError when the file is newer than this code. Writes nothing. */
export function assertKnownVersion (db: Database.Database, path: string): number {
  const found = readSchemaVersion(db)
  if (found > SCHEMA_VERSION) throw new LedgerVersionError(path, found, SCHEMA_VERSION)
  return found
}

/**
 * Applies the missing migrations, each in its own IMMEDIATE transaction. The version is read again
 * inside the transaction, so two processes opening a new file at once apply each migration once.
 */
export function migrate (db: Database.Database, path: string, logger: LedgerLogger): void {
  for (let target = assertKnownVersion(db, path) + 1; target <= SCHEMA_VERSION; target++) {
    const migration = MIGRATIONS[target - 1]
    if (migration === undefined) break
    db.transaction(() => {
      const current = assertKnownVersion(db, path)
      if (current >= target) return
      if (typeof migration === 'string') db.exec(migration)
      else migration(db)
      db.pragma(`user_version = ${target}`)
    }).immediate()
    logger.info({ path, version: target }, 'ledger schema migrated')
  }
}
