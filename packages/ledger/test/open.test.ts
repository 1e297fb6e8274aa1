import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Ledger, SCHEMA_VERSION, openLedger } from '@gpumesh/ledger'
import { gpus, tempDir } from './helpers.js'
import type { TempDir } from './helpers.js'

let dir: TempDir
beforeEach(() => { dir = tempDir() })
afterEach(() => { dir.remove() })

function pragma (path: string, name: string): unknown {
  const db = new Database(path, { readonly: true })
  try {
    return db.pragma(name, { simple: true })
  } finally {
    db.close()
  }
}

describe('opening the ledger', () => {
  it('creates and migrates an empty file to the current schema, in WAL mode', () => {
    const path = dir.file('ledger.db')
    const ledger = new Ledger(path)
    expect(ledger.isOpen).toBe(false)
    ledger.open()
    expect(ledger.isOpen).toBe(true)
    ledger.close()
    expect(pragma(path, 'user_version')).toBe(SCHEMA_VERSION)
    expect(pragma(path, 'journal_mode')).toBe('wal')
  })

  it('keeps its data across close and reopen, and does not migrate twice', () => {
    const path = dir.file('ledger.db')
    const first = openLedger(path)
    first.upsertGpus(gpus(2))
    first.setKv('offer.sequence', '41')
    first.close()
    const second = openLedger(path)
    expect(second.listGpus().map((g) => g.uuid)).toHaveLength(2)
    expect(second.getKv('offer.sequence')).toBe('41')
    second.close()
  })

  it('refuses a database written by a newer gpumesh and leaves it untouched', () => {
    const path = dir.file('future.db')
    const db = new Database(path)
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    db.close()
    const ledger = new Ledger(path)
    let error: unknown
    try {
      ledger.open()
    } catch (err) {
      error = err
    }
    expect(error).toMatchObject({ name: 'LedgerVersionError', code: 'VERSION', found: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION })
    expect((error as Error).message).toMatch(/upgrade gpumesh/i)
    expect(ledger.isOpen).toBe(false)
    expect(pragma(path, 'journal_mode')).toBe('delete')
    expect(pragma(path, 'user_version')).toBe(SCHEMA_VERSION + 1)
  })

  it('close is idempotent and a closed ledger throws LedgerClosedError', () => {
    const ledger = openLedger(dir.file('ledger.db'))
    ledger.close()
    ledger.close()
    expect(() => ledger.listGpus()).toThrow(expect.objectContaining({ name: 'LedgerClosedError', code: 'CLOSED' }))
    ledger.open()
    expect(ledger.listGpus()).toEqual([])
    ledger.close()
  })

  it('maps an unopenable path to LedgerError with the SQLite cause', () => {
    const ledger = new Ledger(dir.file('no/such/dir/ledger.db'))
    expect(() => { ledger.open() }).toThrow(expect.objectContaining({ name: 'LedgerError', retryable: false }))
  })

  it('maps a held write lock to a retryable LedgerBusyError after the busy timeout', () => {
    const path = dir.file('ledger.db')
    const ledger = openLedger(path, { busyTimeoutMs: 50 })
    const other = new Database(path)
    other.prepare('BEGIN IMMEDIATE').run()
    try {
      let error: unknown
      try {
        ledger.setKv('k', 'v')
      } catch (err) {
        error = err
      }
      expect(error).toMatchObject({ name: 'LedgerBusyError', code: 'BUSY', retryable: true })
      expect((error as Error).cause).toMatchObject({ code: expect.stringMatching(/^SQLITE_BUSY/) })
    } finally {
      other.prepare('ROLLBACK').run()
      other.close()
    }
    ledger.setKv('k', 'v')
    expect(ledger.getKv('k')).toBe('v')
    ledger.close()
  })
})
