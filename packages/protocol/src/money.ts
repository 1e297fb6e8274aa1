/**
 * Money is an integer number of a token's base units (a bigint), everywhere. These two functions are
 * the only way between that and the decimal text people read and write ("2.50" of a 6-decimal token
 * is 2_500_000n base units). Neither goes through a float.
 */

const DECIMAL = /^(\d+)(?:\.(\d*))?$/

/**
 * Parses decimal text in token units into base units. Rejects signs, exponents, separators and more
 * fractional digits than the token has, rather than rounding someone's money.
 */
export function parseAmount (text: string, decimals: number): bigint {
  const match = DECIMAL.exec(text.trim())
  if (match == null) {
    throw new RangeError(`"${text}" is not an amount: write digits with an optional decimal point, like 2.50`)
  }
  const whole = match[1] ?? '0'
  const fraction = match[2] ?? ''
  if (fraction.length > decimals) {
    throw new RangeError(`"${text}" has ${fraction.length} decimals but the token has only ${decimals}`)
  }
  return BigInt(whole) * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, '0') || '0')
}

/**
 * Formats base units as decimal text in token units, exactly: at least `minDecimals` fractional digits
 * (default 2, fewer if the token has fewer), trailing zeros beyond that trimmed.
 */
export function formatAmount (amount: bigint, decimals: number, minDecimals = 2): string {
  const negative = amount < 0n
  const abs = negative ? -amount : amount
  const scale = 10n ** BigInt(decimals)
  const whole = abs / scale
  let fraction = decimals > 0 ? (abs % scale).toString().padStart(decimals, '0') : ''
  const keep = Math.min(minDecimals, decimals)
  while (fraction.length > keep && fraction.endsWith('0')) fraction = fraction.slice(0, -1)
  return `${negative ? '-' : ''}${whole}${fraction.length > 0 ? '.' + fraction : ''}`
}

/**
 * The billing rule. What a lease owes after `gpuMilliseconds` of GPU time in total is
 * floor(pricePerGpuHour × gpuMilliseconds / 3,600,000) base units. A usage period's amount is the
 * difference of two such cumulative figures, so rounding never accumulates across periods: the
 * provider gives away less than one base unit per lease, never one per period.
 */
export function cumulativeAmount (pricePerGpuHour: bigint, gpuMilliseconds: bigint): bigint {
  return pricePerGpuHour * gpuMilliseconds / 3_600_000n
}
