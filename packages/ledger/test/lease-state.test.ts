import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  LEASE_STATES, LEASE_TRANSITIONS, canTransition, isActiveLeaseState, isEndedLeaseState, openLedger
} from '@gpumesh/ledger'
import type { LeaseState } from '@gpumesh/ledger'
import { assertNoDoubleAllocation, gpus, leaseInput, rawReservations, tempDir } from './helpers.js'
import type { TempDir } from './helpers.js'

const state = fc.constantFrom(...LEASE_STATES)

describe('lease state machine (pure)', () => {
  it('ended states have no way out, active ones do, and nothing returns to proposed', () => {
    for (const s of LEASE_STATES) {
      expect(isEndedLeaseState(s)).toBe(LEASE_TRANSITIONS[s].length === 0)
      if (isActiveLeaseState(s)) expect(isEndedLeaseState(s)).toBe(false)
      expect(canTransition(s, 'proposed')).toBe(false)
      expect(canTransition(s, s)).toBe(false)
    }
  })

  it('random walks that apply only allowed steps stay in known states and end where they stop', () => {
    fc.assert(fc.property(fc.array(state, { maxLength: 30 }), (attempts) => {
      let current: LeaseState = 'proposed'
      const path: LeaseState[] = [current]
      for (const to of attempts) {
        if (!canTransition(current, to)) continue
        current = to
        path.push(current)
      }
      expect(LEASE_STATES).toContain(current)
      // Every state appears at most once: there are no cycles.
      expect(new Set(path).size).toBe(path.length)
      // Once ended, no attempted step moves it.
      if (isEndedLeaseState(current)) for (const to of LEASE_STATES) expect(canTransition(current, to)).toBe(false)
    }))
  })
})

describe('lease state machine (ledger)', () => {
  let dir: TempDir
  beforeAll(() => { dir = tempDir() })
  afterAll(() => { dir.remove() })
  let run = 0

  it('random reservations and transitions never reach an invalid state, and ended leases hold no GPU', () => {
    const command = fc.oneof(
      fc.record({ kind: fc.constant('reserve' as const), count: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('transition' as const), lease: fc.nat(20), to: state })
    )
    fc.assert(fc.property(fc.array(command, { minLength: 1, maxLength: 40 }), (commands) => {
      const path = dir.file(`walk-${run++}.db`)
      const ledger = openLedger(path)
      try {
        ledger.upsertGpus(gpus(8))
        const ids: string[] = []
        const model = new Map<string, LeaseState>()
        for (const c of commands) {
          if (c.kind === 'reserve') {
            const n = ids.length
            try {
              ledger.reserveLease(leaseInput(n, { gpuCount: c.count }))
              ids.push(leaseInput(n).leaseId)
              model.set(leaseInput(n).leaseId, 'accepted')
            } catch (err) {
              expect(err).toMatchObject({ code: 'NO_CAPACITY' })
            }
            continue
          }
          const id = ids[c.lease % Math.max(1, ids.length)]
          if (id === undefined) continue
          const from = model.get(id) as LeaseState
          try {
            ledger.transitionLease(id, c.to, 'fuzz')
            expect(canTransition(from, c.to)).toBe(true)
            model.set(id, c.to)
          } catch (err) {
            expect(err).toMatchObject({ name: 'InvalidTransitionError', from, to: c.to })
            expect(canTransition(from, c.to)).toBe(false)
          }
        }
        for (const lease of ledger.listLeases()) expect(lease.state).toBe(model.get(lease.leaseId))
        for (const r of rawReservations(path)) expect(isActiveLeaseState(r.state as LeaseState)).toBe(true)
        assertNoDoubleAllocation(ledger)
      } finally {
        ledger.close()
      }
    }), { numRuns: 60 })
  })
})
