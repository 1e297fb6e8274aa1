// @gpumesh/ledger figures: usage samples written through the ledger API against plain better-sqlite3
// inserts of the same rows into the same table (same file layout, WAL, synchronous=NORMAL, foreign
// keys on, one transaction per batch). Batches are what the meter writes: one sampling tick of an
// 8-GPU lease (8 rows per call); a second pair of figures uses 1000-row batches (catch-up writes).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { openLedger } from '@gpumesh/ledger'
import { median } from './lib/median.mjs'

const GPUS = 8
const ROUND_MS = 700
const ROUNDS = 3

const hex = (s) => `0x${Buffer.from(s).toString('hex').padStart(64, '0').slice(-64)}`
const LEASE_ID = hex('bench-lease')

/** A ledger file with 8 GPUs and one running lease, as the meter would find it. */
function prepare (path) {
  const ledger = openLedger(path)
  ledger.upsertGpus(Array.from({ length: GPUS }, (_, i) => ({
    uuid: `GPU-${i}`, index: i, vendor: 'nvidia', name: 'H100', class: 'H100', memoryMiB: 81559, simulated: false, state: 'free', problems: []
  })))
  ledger.reserveLease({
    leaseId: LEASE_ID, orderId: hex('bench-order'), orderExpiresAt: Date.now() + 3_600_000,
    renter: '0x1111111111111111111111111111111111111111', renterPeerId: 'r', matcherPeerId: null,
    provider: '0x2222222222222222222222222222222222222222', token: '0x3333333333333333333333333333333333333333',
    chainId: 1n, pricePerGpuHour: 1_000_000n, gpuClass: 'H100', gpuCount: GPUS, durationSec: 3600,
    billingIntervalSec: 60, paymentGraceSec: 30, startDeadline: Date.now() + 60_000, jobHash: hex('job'),
    eligibleGpuUuids: Array.from({ length: GPUS }, (_, i) => `GPU-${i}`)
  })
  ledger.transitionLease(LEASE_ID, 'running', 'bench')
  return ledger
}

function makeBatch (tick, size) {
  const rows = []
  for (let i = 0; i < size; i++) {
    const n = tick * size + i
    rows.push({ leaseId: LEASE_ID, offsetMs: Math.floor(n / GPUS) * 1000, at: 1_700_000_000_000 + n, gpuUuid: `GPU-${n % GPUS}`, utilizationPercent: 97.5, memoryUsedMiB: 40_000, powerW: 612.5 })
  }
  return rows
}

/** Rows per second writing `size`-row batches with `write` for ROUND_MS. */
function measure (size, write) {
  const batches = Array.from({ length: 64 }, (_, i) => makeBatch(i, size))
  let rows = 0
  let tick = 0
  const start = performance.now()
  let elapsed = 0
  while (elapsed < ROUND_MS) {
    write(batches[tick++ % batches.length])
    rows += size
    elapsed = performance.now() - start
  }
  return rows / (elapsed / 1000)
}

export async function run () {
  const dir = mkdtempSync(join(tmpdir(), 'gpumesh-bench-ledger-'))
  const ledger = prepare(join(dir, 'api.db'))
  // Same schema and lease row, then written by hand with the pragmas the ledger's sample path uses.
  prepare(join(dir, 'raw.db')).close()
  const raw = new Database(join(dir, 'raw.db'))
  raw.pragma('journal_mode = WAL')
  raw.pragma('synchronous = NORMAL')
  raw.pragma('foreign_keys = ON')
  raw.pragma('busy_timeout = 5000')
  const insert = raw.prepare(`INSERT INTO usage_samples (lease_id, offset_ms, at, gpu_uuid, utilization_percent, memory_used_mib, power_w)
    VALUES (?, ?, ?, ?, ?, ?, ?)`)
  const rawBatch = raw.transaction((rows) => {
    for (const x of rows) insert.run(x.leaseId, x.offsetMs, x.at, x.gpuUuid, x.utilizationPercent, x.memoryUsedMiB, x.powerW)
  })
  const viaLedger = (rows) => ledger.appendUsageSamples(rows)

  const results = {}
  try {
    for (const size of [GPUS, 1000]) {
      measure(size, viaLedger)
      measure(size, rawBatch)
      const api = []
      const plain = []
      for (let r = 0; r < ROUNDS; r++) {
        api.push(measure(size, viaLedger))
        plain.push(measure(size, rawBatch))
      }
      const suffix = size === GPUS ? '' : `_batch${size}`
      const batch = size === GPUS ? `${size} rows/transaction (one sampling tick of an ${GPUS}-GPU lease)` : `${size} rows/transaction`
      results[`ledger_usage_samples${suffix}_per_s`] = { value: Math.round(median(api)), unit: 'rows/s', batch }
      results[`sqlite_raw_inserts${suffix}_per_s`] = { value: Math.round(median(plain)), unit: 'rows/s', batch }
    }
  } finally {
    ledger.close()
    raw.close()
    rmSync(dir, { recursive: true, force: true })
  }
  return results
}
