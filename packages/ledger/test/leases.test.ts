import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import type { Ledger } from '@gpumesh/ledger'
import { assertNoDoubleAllocation, caught, closeTestLedger, gpuUuid, leaseInput, openTestLedger, rawReservations } from './helpers.js'
import type { FakeClock, TempDir } from './helpers.js'

let dir: TempDir
let clock: FakeClock
let ledger: Ledger
let path: string

beforeEach(() => {
  ;({ dir, clock, path, ledger } = openTestLedger())
})
afterEach(() => { closeTestLedger({ dir, ledger }) })

/** A small deterministic PRNG, so a failure can be replayed. */
function random (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

describe('reserving GPUs', () => {
  it('takes the first free eligible GPUs in preference order and writes lease, events and reservations', () => {
    const chosen = ledger.reserveLease(leaseInput(1, { gpuCount: 2, eligibleGpuUuids: [gpuUuid(5), gpuUuid(2), gpuUuid(7)] }))
    expect(chosen).toEqual([gpuUuid(5), gpuUuid(2)])
    const lease = ledger.getLease(leaseInput(1).leaseId)
    expect(lease).toMatchObject({ state: 'accepted', gpus: chosen, pricePerGpuHour: 2_000_000n, chainId: 31337n, terms: null })
    expect(ledger.leaseEvents(leaseInput(1).leaseId).map((e) => [e.fromState, e.toState])).toEqual([[null, 'proposed'], ['proposed', 'accepted']])
    const byUuid = new Map(ledger.listGpus().map((g) => [g.uuid, g]))
    expect(byUuid.get(gpuUuid(5))).toMatchObject({ state: 'reserved', leaseId: leaseInput(1).leaseId })
    expect(byUuid.get(gpuUuid(7))).toMatchObject({ state: 'free', leaseId: null })
  })

  it('skips GPUs that are unhealthy, unknown or held, and throws NO_CAPACITY writing nothing', () => {
    ledger.markGpuState(gpuUuid(0), 'unhealthy', ['temperature 93 C'])
    ledger.reserveLease(leaseInput(1, { eligibleGpuUuids: [gpuUuid(1)] }))
    const err = caught(() => ledger.reserveLease(leaseInput(2, { gpuCount: 2, eligibleGpuUuids: [gpuUuid(0), gpuUuid(1), 'GPU-unknown', gpuUuid(2)] })))
    expect(err).toMatchObject({ name: 'NoCapacityError', code: 'NO_CAPACITY', requested: 2, available: 1 })
    expect(ledger.getLease(leaseInput(2).leaseId)).toBeNull()
    // The order was not marked seen: the same order can still be accepted later.
    expect(ledger.reserveLease(leaseInput(2, { eligibleGpuUuids: [gpuUuid(2)] }))).toEqual([gpuUuid(2)])
  })

  it('refuses a replayed order, even under another lease id', () => {
    ledger.reserveLease(leaseInput(1))
    const err = caught(() => ledger.reserveLease(leaseInput(2, { orderId: leaseInput(1).orderId })))
    expect(err).toMatchObject({ name: 'ReplayError', code: 'REPLAY' })
    expect(ledger.markOrderSeen(leaseInput(1).orderId, 0)).toBe(false)
    expect(ledger.markOrderSeen(leaseInput(3).orderId, 1)).toBe(true)
    expect(ledger.markOrderSeen(leaseInput(3).orderId, 1)).toBe(false)
    expect(ledger.pruneSeenOrders(2)).toBe(1)
  })

  it('200 reservations and releases over 8 GPUs never give a GPU twice', () => {
    const rand = random(42)
    const held: string[] = []
    let noCapacity = 0
    for (let i = 0; i < 200; i++) {
      const eligible = Array.from({ length: 8 }, (_, k) => gpuUuid(k)).sort(() => rand() - 0.5)
      try {
        ledger.reserveLease(leaseInput(i, { gpuCount: 1 + Math.floor(rand() * 3), eligibleGpuUuids: eligible }))
        held.push(leaseInput(i).leaseId)
      } catch (err) {
        expect(err).toMatchObject({ code: 'NO_CAPACITY' })
        noCapacity++
      }
      if (held.length > 0 && rand() < 0.4) {
        const id = held.splice(Math.floor(rand() * held.length), 1)[0] as string
        if (rand() < 0.5) ledger.transitionLease(id, 'terminated', 'RENTER_CANCEL')
        else {
          ledger.transitionLease(id, 'running', 'job started')
          ledger.transitionLease(id, 'completed', 'exit 0', undefined, { exitCode: 0 })
        }
      }
      const reservations = rawReservations(path)
      expect(new Set(reservations.map((r) => r.gpu_uuid)).size).toBe(reservations.length)
      expect(reservations.every((r) => r.state === 'accepted' || r.state === 'running')).toBe(true)
    }
    expect(noCapacity).toBeGreaterThan(0)
    expect(assertNoDoubleAllocation(ledger)).toBe(200 - noCapacity)
  })

  it('two ledgers on one file, interleaved, never give a GPU twice', () => {
    const other = openLedger(path, { clock })
    try {
      const results = Array.from({ length: 40 }, (_, i) => {
        const on = i % 2 === 0 ? ledger : other
        try {
          return on.reserveLease(leaseInput(i)).length
        } catch (err) {
          expect(err).toMatchObject({ code: 'NO_CAPACITY' })
          return 0
        }
      })
      expect(results.reduce((a, b) => a + b, 0)).toBe(8)
      expect(new Set(rawReservations(path).map((r) => r.gpu_uuid)).size).toBe(8)
    } finally {
      other.close()
    }
  })

  it('the database itself refuses a second reservation of a held GPU', () => {
    ledger.reserveLease(leaseInput(1, { eligibleGpuUuids: [gpuUuid(0)] }))
    ledger.reserveLease(leaseInput(2, { eligibleGpuUuids: [gpuUuid(1)] }))
    const db = new Database(path)
    try {
      db.pragma('foreign_keys = ON')
      expect(() => db.prepare('INSERT INTO lease_gpus (lease_id, gpu_uuid, position) VALUES (?, ?, 1)').run(leaseInput(2).leaseId, gpuUuid(0))).not.toThrow()
      expect(() => db.prepare('INSERT INTO active_reservations (gpu_uuid, lease_id) VALUES (?, ?)').run(gpuUuid(0), leaseInput(2).leaseId))
        .toThrow(/UNIQUE constraint failed/)
    } finally {
      db.close()
    }
  })
})

describe('lease transitions', () => {
  it('walks accepted → running → completed, recording events and releasing GPUs at the end', () => {
    const id = leaseInput(1).leaseId
    ledger.reserveLease(leaseInput(1, { gpuCount: 2 }))
    clock.advance(1000)
    const running = ledger.transitionLease(id, 'running', 'job started', { runner: 'process' })
    expect(running).toMatchObject({ state: 'running', startedAt: clock.now(), stateReason: 'job started' })
    expect(ledger.listGpus().filter((g) => g.state === 'leased')).toHaveLength(2)
    ledger.setLeaseJob(id, { pid: 4242, pidStartTime: 123456, jobDir: '/var/lib/gpumesh/jobs/x' })
    clock.advance(5000)
    const done = ledger.transitionLease(id, 'completed', 'exit 0', { bill: 12n }, { exitCode: 0 })
    expect(done).toMatchObject({ state: 'completed', endedAt: clock.now(), exitCode: 0, jobPid: 4242, jobDir: '/var/lib/gpumesh/jobs/x' })
    expect(ledger.listGpus().every((g) => g.state === 'free' && g.leaseId === null)).toBe(true)
    const events = ledger.leaseEvents(id)
    expect(events.map((e) => e.toState)).toEqual(['proposed', 'accepted', 'running', 'completed'])
    expect(events[3]).toMatchObject({ fromState: 'running', reason: 'exit 0', detail: { bill: '12' } })
    expect(ledger.activeLeases()).toEqual([])
    expect(ledger.listLeases({ state: 'completed' }).map((l) => l.leaseId)).toEqual([id])
  })

  it('refuses a step the state machine does not allow, writing nothing', () => {
    const id = leaseInput(1).leaseId
    ledger.reserveLease(leaseInput(1))
    expect(caught(() => ledger.transitionLease(id, 'completed', 'nope'))).toMatchObject({
      name: 'InvalidTransitionError', code: 'INVALID_TRANSITION', from: 'accepted', to: 'completed'
    })
    ledger.transitionLease(id, 'expired', 'START_DEADLINE')
    expect(caught(() => ledger.transitionLease(id, 'running', 'late'))).toMatchObject({ name: 'InvalidTransitionError' })
    expect(caught(() => ledger.transitionLease('0xnone', 'running', 'x'))).toMatchObject({ name: 'NotFoundError', kind: 'lease' })
    expect(ledger.leaseEvents(id)).toHaveLength(3)
  })

  it('expires accepted leases past their start deadline and frees their GPUs', () => {
    ledger.reserveLease(leaseInput(1, { startDeadline: clock.now() + 1000 }))
    ledger.reserveLease(leaseInput(2, { startDeadline: clock.now() + 1000 }))
    ledger.reserveLease(leaseInput(3, { startDeadline: clock.now() + 9000 }))
    ledger.transitionLease(leaseInput(2).leaseId, 'running', 'job started')
    expect(ledger.expireOverdueLeases(clock.now() + 999)).toEqual([])
    expect(ledger.expireOverdueLeases(clock.now() + 1000)).toEqual([leaseInput(1).leaseId])
    expect(ledger.getLease(leaseInput(1).leaseId)).toMatchObject({ state: 'expired', stateReason: 'START_DEADLINE' })
    expect(ledger.listGpus().filter((g) => g.state !== 'free')).toHaveLength(2)
  })

  it('says capacity-changed after a lease takes or gives back GPUs, not when its job starts or a write fails', () => {
    const seen: Array<{ leaseId: string, state: string }> = []
    ledger.on('capacity-changed', (e) => { seen.push(e) })
    ledger.reserveLease(leaseInput(1, { startDeadline: clock.now() + 1000 }))
    ledger.reserveLease(leaseInput(2))
    ledger.transitionLease(leaseInput(2).leaseId, 'running', 'job started')
    expect(() => ledger.transitionLease(leaseInput(2).leaseId, 'accepted', 'back')).toThrow()
    ledger.transitionLease(leaseInput(2).leaseId, 'completed', 'EXIT_0')
    ledger.expireOverdueLeases(clock.now() + 1000)
    expect(seen).toEqual([
      { leaseId: leaseInput(1).leaseId, state: 'accepted' },
      { leaseId: leaseInput(2).leaseId, state: 'accepted' },
      { leaseId: leaseInput(2).leaseId, state: 'completed' },
      { leaseId: leaseInput(1).leaseId, state: 'expired' }
    ])
  })

  it('keeps lease events append-only', () => {
    ledger.reserveLease(leaseInput(1))
    const db = new Database(path)
    try {
      expect(() => db.prepare("UPDATE lease_events SET reason = 'forged'").run()).toThrow(/append-only/)
      expect(() => db.prepare('DELETE FROM lease_events').run()).toThrow(/append-only/)
      expect(() => db.prepare("UPDATE leases SET state = 'completed'").run()).toThrow(/invalid lease transition/)
    } finally {
      db.close()
    }
    expect(ledger.leaseEvents(leaseInput(1).leaseId)).toHaveLength(2)
  })

  it('stores signed terms once', () => {
    const id = leaseInput(1).leaseId
    ledger.reserveLease(leaseInput(1))
    ledger.setLeaseTerms(id, '{"leaseId":"x","gpus":["a"]}')
    ledger.setLeaseTerms(id, '{"leaseId":"x","gpus":["a"]}')
    expect(ledger.getLease(id)?.terms).toBe('{"leaseId":"x","gpus":["a"]}')
    expect(caught(() => { ledger.setLeaseTerms(id, '{"other":1}') })).toMatchObject({ name: 'InvalidInputError' })
    expect(caught(() => { ledger.setLeaseTerms(id, 'not json') })).toMatchObject({ name: 'InvalidInputError', field: 'terms' })
  })

  it('logs rejected proposals apart from leases, without blocking the order', () => {
    const rejection = ledger.recordRejection({
      orderId: leaseInput(1).orderId, renter: null, matcherPeerId: 'm', code: 'PRICE_TOO_LOW', message: 'below floor', proposal: '{"type":"lease-proposal"}'
    })
    expect(rejection).toMatchObject({ id: 1, code: 'PRICE_TOO_LOW', at: clock.now() })
    expect(ledger.listRejections()).toEqual([rejection])
    expect(ledger.reserveLease(leaseInput(1))).toHaveLength(1)
    ledger.recordRejection({ orderId: leaseInput(1).orderId, renter: null, matcherPeerId: null, code: 'REPLAY', message: 'seen' })
    expect(ledger.listRejections().map((r) => r.code)).toEqual(['REPLAY', 'PRICE_TOO_LOW'])
  })
})
