import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { openLedger } from '@gpumesh/ledger'
import type { Bytes32, GpuInput, Ledger, ReserveLeaseInput } from '@gpumesh/ledger'

export interface TempDir {
  path: string
  file: (name: string) => string
  remove: () => void
}

export function tempDir (): TempDir {
  const path = mkdtempSync(join(tmpdir(), 'gpumesh-ledger-'))
  return { path, file: (name) => join(path, name), remove: () => { rmSync(path, { recursive: true, force: true }) } }
}

/** A clock the test moves by hand. */
export interface FakeClock {
  now: () => number
  set: (t: number) => void
  advance: (ms: number) => void
}

export function fakeClock (start = 1_700_000_000_000): FakeClock {
  let t = start
  return { now: () => t, set: (v) => { t = v }, advance: (ms) => { t += ms } }
}

/** What a test's ledger stands on: its temp dir, its file, its clock. */
export interface TestLedger { dir: TempDir, path: string, clock: FakeClock, ledger: Ledger }

/** A ledger in a new temp dir on a fake clock, with the eight GPUs of `gpus(8)`; `closeTestLedger` ends it. */
export function openTestLedger (): TestLedger {
  const dir = tempDir()
  const clock = fakeClock()
  const path = dir.file('ledger.db')
  const ledger = openLedger(path, { clock })
  ledger.upsertGpus(gpus(8))
  return { dir, path, clock, ledger }
}

export function closeTestLedger ({ dir, ledger }: Pick<TestLedger, 'dir' | 'ledger'>): void {
  ledger.close()
  dir.remove()
}

/** What `fn` throws; fails the test when it returns. */
export function caught (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

export function gpuUuid (i: number): string {
  return `GPU-00000000-0000-0000-0000-${i.toString().padStart(12, '0')}`
}

export function gpus (count: number): GpuInput[] {
  return Array.from({ length: count }, (_, i) => ({
    uuid: gpuUuid(i),
    index: i,
    vendor: 'nvidia' as const,
    name: 'NVIDIA H100 80GB HBM3',
    class: 'H100-SXM-80GB',
    memoryMiB: 81559,
    simulated: false,
    state: 'free' as const,
    problems: []
  }))
}

export function hex32 (label: string | number): Bytes32 {
  return `0x${Buffer.from(String(label)).toString('hex').padStart(64, '0').slice(-64)}`
}

export function leaseInput (n: string | number, overrides: Partial<ReserveLeaseInput> = {}): ReserveLeaseInput {
  return {
    leaseId: hex32(`lease-${n}`),
    orderId: hex32(`order-${n}`),
    orderExpiresAt: 1_800_000_000_000,
    renter: '0x1111111111111111111111111111111111111111',
    renterPeerId: '12D3KooWRenter',
    matcherPeerId: '12D3KooWMatcher',
    provider: '0x2222222222222222222222222222222222222222',
    token: '0x3333333333333333333333333333333333333333',
    chainId: 31337n,
    pricePerGpuHour: 2_000_000n,
    gpuClass: 'H100-SXM-80GB',
    gpuCount: 1,
    durationSec: 3600,
    billingIntervalSec: 60,
    paymentGraceSec: 30,
    startDeadline: 1_700_000_060_000,
    jobHash: hex32('job'),
    eligibleGpuUuids: Array.from({ length: 8 }, (_, i) => gpuUuid(i)),
    ...overrides
  }
}

/** Reads the raw tables behind a ledger's back (read-only), to check invariants the API hides. */
export function rawReservations (path: string): Array<{ gpu_uuid: string, lease_id: string, state: string }> {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare(`SELECT r.gpu_uuid, r.lease_id, l.state FROM active_reservations r
      JOIN leases l ON l.lease_id = r.lease_id`).all() as Array<{ gpu_uuid: string, lease_id: string, state: string }>
  } finally {
    db.close()
  }
}

/**
 * Replays every lease event in commit order and fails if a GPU was ever held by two active leases at
 * once, or if an ended lease kept GPUs. Returns how many leases were ever accepted.
 */
export function assertNoDoubleAllocation (ledger: Ledger): number {
  const leases = ledger.listLeases()
  const gpusOf = new Map(leases.map((l) => [l.leaseId as string, l.gpus]))
  const events = leases.flatMap((l) => ledger.leaseEvents(l.leaseId)).sort((a, b) => a.id - b.id)
  const holder = new Map<string, string>()
  let accepted = 0
  for (const e of events) {
    const held = gpusOf.get(e.leaseId) ?? []
    if (e.toState === 'accepted') {
      accepted++
      for (const g of held) {
        const other = holder.get(g)
        if (other !== undefined) throw new Error(`GPU ${g} given to ${e.leaseId} while ${other} held it`)
        holder.set(g, e.leaseId)
      }
    } else if (!['proposed', 'running'].includes(e.toState)) {
      for (const g of held) if (holder.get(g) === e.leaseId) holder.delete(g)
    }
  }
  const active = new Set(ledger.activeLeases().map((l) => l.leaseId as string))
  for (const [g, id] of holder) {
    if (!active.has(id)) throw new Error(`GPU ${g} still held by ended lease ${id}`)
  }
  return accepted
}
