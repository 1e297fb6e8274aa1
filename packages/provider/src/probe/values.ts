// Turning tool cells into typed values. Every spelling of "no value" becomes null; 0 stays 0.

const MISSING = new Set([
  '', 'n/a', 'na', 'not supported', 'not available', 'unknown', 'unknown error', 'insufficient permissions',
  'gpu is lost', 'not found', 'none', 'no data', 'undefined', 'null'
])

/** The trimmed text of a cell, or null for `[N/A]`, `N/A`, `[Not Supported]`, `[Unknown Error]` and kin. */
export function cellText (cell: string | undefined | null): string | null {
  if (cell == null) return null
  let text = cell.trim()
  if (text.startsWith('[') && text.endsWith(']')) return null
  if (MISSING.has(text.toLowerCase())) return null
  // nvidia-smi without `nounits`: strip a unit after the number.
  text = text.replace(/^(-?\d+(?:\.\d+)?) ?(?:MiB|W|%|C|MHz)$/, '$1')
  return text
}

/** A finite number, or null. Text that is neither a number nor a missing-value spelling is null too. */
export function cellNumber (cell: string | undefined | null): number | null {
  const text = cellText(cell)
  if (text == null || !/^-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$/i.test(text)) return null
  const n = Number(text)
  return Number.isFinite(n) ? n : null
}

/** An integer, or null. */
export function cellInteger (cell: string | undefined | null): number | null {
  const n = cellNumber(cell)
  return n != null && Number.isInteger(n) ? n : null
}

/** `Enabled`/`Yes`/`1`/`true` → true, `Disabled`/`No`/`0`/`false` → false, else null. */
export function cellBoolean (cell: string | undefined | null): boolean | null {
  const text = cellText(cell)?.toLowerCase()
  if (text == null) return null
  if (['enabled', 'yes', '1', 'true', 'on', 'active'].includes(text)) return true
  if (['disabled', 'no', '0', 'false', 'off', 'inactive'].includes(text)) return false
  return null
}

/** Any JSON value as a cell: numbers and strings; objects `{ value, unit }` give their value. */
export function jsonCell (value: unknown): string | null {
  if (value == null) return null
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'object' && 'value' in value) return jsonCell((value as { value: unknown }).value)
  return null
}
