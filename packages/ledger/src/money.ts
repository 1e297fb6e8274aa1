import { jsonReplacer } from '@gpumesh/protocol'
import { InvalidInputError } from './errors.js'

/**
 * Money crosses the ledger boundary as bigint base units and is stored as a decimal TEXT, never as a
 * float: SQLite's INTEGER stops at 2^63 − 1 and REAL loses cents long before that.
 */

const DECIMAL = /^(0|[1-9][0-9]*)$/

/** A non-negative bigint as the canonical decimal string it is stored as. */
export function moneyToText (value: bigint, field: string): string {
  if (typeof value !== 'bigint') throw new InvalidInputError(field, `expected a bigint, got ${typeof value}`)
  if (value < 0n) throw new InvalidInputError(field, 'money cannot be negative')
  return value.toString(10)
}

/** Reads a stored decimal back into a bigint. */
export function moneyFromText (text: string, field: string): bigint {
  if (!DECIMAL.test(text)) throw new InvalidInputError(field, `stored value ${JSON.stringify(text)} is not a decimal`)
  return BigInt(text)
}

export function optionalMoneyToText (value: bigint | null, field: string): string | null {
  return value === null ? null : moneyToText(value, field)
}

export function optionalMoneyFromText (text: string | null, field: string): bigint | null {
  return text === null ? null : moneyFromText(text, field)
}

/** JSON.stringify that writes bigints as decimal strings (for event details). */
export function stringifyJson (value: unknown): string {
  return JSON.stringify(value, jsonReplacer)
}

/** Requires `text` to be JSON (what the protocol codec produced); returns it unchanged. */
export function checkJsonText (text: string, field: string): string {
  if (typeof text !== 'string') throw new InvalidInputError(field, 'expected JSON text')
  try {
    JSON.parse(text)
  } catch (err) {
    throw new InvalidInputError(field, `not JSON (${(err as Error).message})`)
  }
  return text
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/

/** Requires a 0x address (20 bytes of hex); returns it unchanged. */
export function checkAddress<T extends string> (value: T, field: string): T {
  if (typeof value !== 'string' || !ADDRESS.test(value)) throw new InvalidInputError(field, 'expected a 0x address of 20 bytes')
  return value
}
