import { describe, expect, it } from 'vitest'
import { cellBoolean, cellInteger, cellNumber, cellText } from '../../src/probe/values.js'

describe('cell values', () => {
  it('turns every missing-value spelling into null', () => {
    for (const s of ['[N/A]', 'N/A', '[Not Supported]', '[Unknown Error]', '[Insufficient Permissions]', '[GPU is lost]', '', '  ', 'Not Supported', '[Not Found]']) {
      expect(cellText(s), s).toBeNull()
      expect(cellNumber(s), s).toBeNull()
    }
  })

  it('keeps 0 as a value', () => {
    expect(cellNumber('0')).toBe(0)
    expect(cellInteger(' 0 ')).toBe(0)
    expect(cellNumber('0.00')).toBe(0)
  })

  it('parses numbers with and without units, and refuses garbage', () => {
    expect(cellNumber('81559')).toBe(81559)
    expect(cellNumber('100.89 W')).toBe(100.89)
    expect(cellNumber('81559 MiB')).toBe(81559)
    expect(cellNumber('12abc')).toBeNull()
    expect(cellInteger('1.5')).toBeNull()
  })

  it('reads booleans in the spellings the tools use', () => {
    expect(cellBoolean('Enabled')).toBe(true)
    expect(cellBoolean('Disabled')).toBe(false)
    expect(cellBoolean('Yes')).toBe(true)
    expect(cellBoolean('0')).toBe(false)
    expect(cellBoolean('[N/A]')).toBeNull()
  })
})
