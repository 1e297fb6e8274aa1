/** What the protocol tests ask of a refusal. */
import { expect } from 'vitest'
import { ProtocolError } from '@gpumesh/protocol'

/** The ProtocolError `fn` throws; fails the test when it returns or throws anything else. */
export function protocolError (fn: () => unknown): ProtocolError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
    return err as ProtocolError
  }
  throw new Error('expected a ProtocolError')
}

/** The code and field of the ProtocolError `fn` throws. */
export function codeOf (fn: () => unknown): [string, string | null] {
  const err = protocolError(fn)
  return [err.code, err.field]
}
