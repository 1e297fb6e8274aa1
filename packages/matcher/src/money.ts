/**
 * Token amounts as text, exactly: base units are bigint, decimals are the token's (USDC: 6). No floats.
 */

export type InvalidAmountCode = 'MALFORMED' | 'TOO_MANY_DECIMALS' | 'BAD_DECIMALS'

export class InvalidAmountError extends Error {
  override name = 'InvalidAmountError'
  readonly code: InvalidAmountCode

  constructor (code: InvalidAmountCode, message: string) {
    super(message)
    this.code = code
  }
}

/** The most decimals an amount may have; ERC-20 tokens use at most 18, this leaves room. */
const MAX_DECIMALS = 77

function checkDecimals (decimals: number): void {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > MAX_DECIMALS) {
    throw new InvalidAmountError('BAD_DECIMALS', `decimals must be an integer from 0 to ${MAX_DECIMALS}, got ${decimals}`)
  }
}

/**
 * Formats base units as a decimal number with at least two decimals, trailing zeros beyond those two
 * trimmed: `formatAmount(2100000n, 6)` is `"2.10"`, `formatAmount(2123456n, 6)` is `"2.123456"`,
 * `formatAmount(5n, 0)` is `"5.00"`. Negative amounts keep their sign.
 */
export function formatAmount (amount: bigint, decimals: number): string {
  checkDecimals(decimals)
  const negative = amount < 0n
  const digits = (negative ? -amount : amount).toString()
  const padded = digits.padStart(decimals + 1, '0')
  const whole = padded.slice(0, padded.length - decimals)
  let fraction = padded.slice(padded.length - decimals)
  let end = fraction.length
  while (end > 2 && fraction.charCodeAt(end - 1) === 48 /* '0' */) end--
  fraction = fraction.slice(0, end).padEnd(2, '0')
  return `${negative ? '-' : ''}${whole}.${fraction}`
}

const AMOUNT = /^(\d+)(?:\.(\d+))?$/

/**
 * Parses a non-negative decimal amount ("2", "2.1", "0.000001") into base units. Throws
 * `InvalidAmountError` with code `MALFORMED` for anything else (signs, exponents, blanks, "1.", ".5")
 * and `TOO_MANY_DECIMALS` when the text has more decimals than the token, even if they are zeros.
 */
export function parseAmount (text: string, decimals: number): bigint {
  checkDecimals(decimals)
  const match = AMOUNT.exec(text)
  if (match == null) throw new InvalidAmountError('MALFORMED', `not a decimal amount: ${JSON.stringify(text)}`)
  const whole = match[1] ?? '0'
  const fraction = match[2] ?? ''
  if (fraction.length > decimals) {
    throw new InvalidAmountError('TOO_MANY_DECIMALS', `${JSON.stringify(text)} has ${fraction.length} decimals; the token has ${decimals}`)
  }
  return BigInt(whole + fraction.padEnd(decimals, '0'))
}
