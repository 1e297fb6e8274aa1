import { describe, expect, it } from 'vitest'
import { formatAmount, parseAmount } from '@gpumesh/matcher'

describe('formatAmount', () => {
  it('keeps at least two decimals and trims the rest', () => {
    expect(formatAmount(0n, 6)).toBe('0.00')
    expect(formatAmount(2_100_000n, 6)).toBe('2.10')
    expect(formatAmount(2_000_000n, 6)).toBe('2.00')
    expect(formatAmount(2_123_456n, 6)).toBe('2.123456')
    expect(formatAmount(2_120_000n, 6)).toBe('2.12')
    expect(formatAmount(2_125_000n, 6)).toBe('2.125')
    expect(formatAmount(1n, 6)).toBe('0.000001')
    expect(formatAmount(5n, 0)).toBe('5.00')
    expect(formatAmount(25n, 1)).toBe('2.50')
    expect(formatAmount(-1_500_000n, 6)).toBe('-1.50')
  })

  it('is exact with 18 decimals and huge values', () => {
    expect(formatAmount(1n, 18)).toBe('0.000000000000000001')
    expect(formatAmount(10n ** 18n, 18)).toBe('1.00')
    const max = 2n ** 256n - 1n
    const text = formatAmount(max, 18)
    expect(text).toBe('115792089237316195423570985008687907853269984665640564039457.584007913129639935')
    expect(parseAmount(text, 18)).toBe(max)
  })

  it('rejects impossible decimals', () => {
    expect(() => formatAmount(1n, -1)).toThrow(expect.objectContaining({ name: 'InvalidAmountError', code: 'BAD_DECIMALS' }))
    expect(() => formatAmount(1n, 1.5)).toThrow(expect.objectContaining({ code: 'BAD_DECIMALS' }))
  })
})

describe('parseAmount', () => {
  it('parses exactly', () => {
    expect(parseAmount('0', 6)).toBe(0n)
    expect(parseAmount('2', 6)).toBe(2_000_000n)
    expect(parseAmount('2.1', 6)).toBe(2_100_000n)
    expect(parseAmount('2.10', 6)).toBe(2_100_000n)
    expect(parseAmount('0.000001', 6)).toBe(1n)
    expect(parseAmount('0.000000000000000001', 18)).toBe(1n)
    expect(parseAmount('7', 0)).toBe(7n)
    expect(parseAmount('123456789012345678901234567890.5', 6)).toBe(123456789012345678901234567890_500000n)
  })

  it('rejects more decimals than the token has', () => {
    expect(() => parseAmount('0.0000001', 6)).toThrow(expect.objectContaining({ name: 'InvalidAmountError', code: 'TOO_MANY_DECIMALS' }))
    expect(() => parseAmount('1.0000000', 6)).toThrow(expect.objectContaining({ code: 'TOO_MANY_DECIMALS' }))
    expect(() => parseAmount('1.5', 0)).toThrow(expect.objectContaining({ code: 'TOO_MANY_DECIMALS' }))
  })

  it('rejects what is not a plain decimal', () => {
    for (const text of ['', ' 1', '1 ', '-1', '+1', '1.', '.5', '1e6', '0x10', '1,5', 'NaN', '1.2.3']) {
      expect(() => parseAmount(text, 6), text).toThrow(expect.objectContaining({ code: 'MALFORMED' }))
    }
  })

  it('round-trips with formatAmount', () => {
    for (const [amount, decimals] of [[0n, 6], [1n, 6], [2_100_000n, 6], [10n ** 30n + 7n, 18], [99n, 2]] as const) {
      expect(parseAmount(formatAmount(amount, decimals), decimals)).toBe(amount)
    }
  })
})
