/**
 * The lease state machine, as pure data. The ledger refuses any step not listed here.
 *
 *   proposed → accepted → running → completed | terminated | failed
 *   proposed → rejected          accepted → expired | terminated | failed
 *
 * `accepted → terminated` covers a renter or provider cancelling before the job starts, and
 * `accepted → failed` a job that could not be started (bad bundle, runner error); without them such a
 * lease would have to sit on its GPUs until its start deadline.
 */

export const LEASE_STATES = [
  'proposed',
  'accepted',
  'running',
  'completed',
  'terminated',
  'failed',
  'rejected',
  'expired'
] as const

export type LeaseState = typeof LEASE_STATES[number]

/** States in which a lease holds its GPUs. */
export type ActiveLeaseState = 'accepted' | 'running'

/** States a lease never leaves. */
export type EndedLeaseState = 'completed' | 'terminated' | 'failed' | 'rejected' | 'expired'

export const LEASE_TRANSITIONS: Readonly<Record<LeaseState, readonly LeaseState[]>> = Object.freeze({
  proposed: ['accepted', 'rejected'],
  accepted: ['running', 'expired', 'terminated', 'failed'],
  running: ['completed', 'terminated', 'failed'],
  completed: [],
  terminated: [],
  failed: [],
  rejected: [],
  expired: []
})

export function isLeaseState (value: unknown): value is LeaseState {
  return typeof value === 'string' && (LEASE_STATES as readonly string[]).includes(value)
}

/** True when the state machine allows `from → to`. */
export function canTransition (from: LeaseState, to: LeaseState): boolean {
  return LEASE_TRANSITIONS[from].includes(to)
}

/** True for the states in which a lease holds GPUs (accepted, running). */
export function isActiveLeaseState (state: LeaseState): state is ActiveLeaseState {
  return state === 'accepted' || state === 'running'
}

/** True for the states with no way out. */
export function isEndedLeaseState (state: LeaseState): state is EndedLeaseState {
  return LEASE_TRANSITIONS[state].length === 0
}
