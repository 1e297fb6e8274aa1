import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import type { GpuInput } from '@gpumesh/ledger'
import { assertNoDoubleAllocation, hex32, leaseInput, tempDir } from './helpers.js'
import type { TempDir } from './helpers.js'

// Child processes run the built package (dist), like the daemon does.
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))
const root = fileURLToPath(new URL('../../../', import.meta.url))

beforeAll(() => {
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-b', 'packages/ledger'], { cwd: root, stdio: 'pipe' })
}, 60_000)

let dir: TempDir
beforeEach(() => { dir = tempDir() })
afterEach(() => { dir.remove() })

function simpleGpus (count: number): GpuInput[] {
  return Array.from({ length: count }, (_, i) => ({
    uuid: `GPU-${i}`, index: i, vendor: 'nvidia', name: 'H100', class: 'H100', memoryMiB: 81559, simulated: false, state: 'free', problems: []
  }))
}

function integrity (path: string): unknown {
  const db = new Database(path, { readonly: true })
  try {
    return db.pragma('integrity_check', { simple: true })
  } finally {
    db.close()
  }
}

describe('across processes', () => {
  it('two processes racing for 8 GPUs never hold the same GPU at once', async () => {
    const path = dir.file('race.db')
    const setup = openLedger(path)
    setup.upsertGpus(simpleGpus(8))
    setup.close()
    const children = ['a', 'b'].map((prefix) => spawn(process.execPath, [`${fixtures}reserve-race.mjs`, path, prefix, '150', '8'], { stdio: ['ignore', 'pipe', 'pipe'] }))
    const outputs = await Promise.all(children.map(async (child) => {
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => { out += d.toString() })
      child.stderr.on('data', (d: Buffer) => { err += d.toString() })
      const [code] = await once(child, 'exit') as [number | null]
      expect(err).toBe('')
      expect(code).toBe(0)
      return JSON.parse(out) as { accepted: number, noCapacity: number, busy: number }
    }))
    const ledger = openLedger(path)
    try {
      const accepted = outputs.reduce((a, o) => a + o.accepted, 0)
      expect(accepted).toBeGreaterThan(8)
      expect(outputs.every((o) => o.accepted > 0)).toBe(true)
      expect(assertNoDoubleAllocation(ledger)).toBe(accepted)
      expect(integrity(path)).toBe('ok')
    } finally {
      ledger.close()
    }
  })

  it('kill -9 while appending loses no committed row and leaves the file intact', async () => {
    const path = dir.file('crash.db')
    const leaseId = hex32('crash')
    const setup = openLedger(path)
    setup.upsertGpus(simpleGpus(8))
    setup.reserveLease(leaseInput('crash', { leaseId, gpuCount: 8, eligibleGpuUuids: simpleGpus(8).map((g) => g.uuid) }))
    setup.transitionLease(leaseId, 'running', 'job started')
    setup.close()

    const child = spawn(process.execPath, [`${fixtures}append-samples.mjs`, path, leaseId, '8'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let lastCommitted = -1
    let buffer = ''
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        buffer += d.toString()
        const lines = buffer.split('\n')
        buffer = lines.pop() ?? ''
        for (const line of lines) lastCommitted = Number(line)
        if (lastCommitted >= 400) resolve()
      })
      child.once('exit', () => { resolve() })
    })
    child.kill('SIGKILL')
    await once(child, 'exit').catch(() => undefined)
    expect(lastCommitted).toBeGreaterThanOrEqual(400)

    expect(integrity(path)).toBe('ok')
    const ledger = openLedger(path)
    try {
      const samples = ledger.samplesForPeriod(leaseId, 0, Number.MAX_SAFE_INTEGER)
      // Whole batches only, and at least every batch reported committed.
      expect(samples.length % 8).toBe(0)
      const batches = samples.length / 8
      expect(batches).toBeGreaterThanOrEqual(lastCommitted + 1)
      samples.forEach((s, i) => {
        const n = Math.floor(i / 8)
        expect(s).toMatchObject({ offsetMs: n * 1000, gpuUuid: `GPU-${i % 8}`, utilizationPercent: n % 101, memoryUsedMiB: n, powerW: n / 4 })
      })
      const periods = ledger.usagePeriods(leaseId)
      expect(periods.length).toBeGreaterThanOrEqual(Math.floor((lastCommitted + 1) / 10))
      periods.forEach((p, i) => {
        expect(p).toMatchObject({ periodIndex: i, startOffsetMs: i * 10_000, cumulativeAmount: 7n * BigInt(i + 1) })
      })
      // The ledger carries on where it stopped.
      ledger.appendUsageSamples([{ leaseId, offsetMs: batches * 1000, at: 0, gpuUuid: 'GPU-0', utilizationPercent: null, memoryUsedMiB: null, powerW: null }])
      expect(ledger.lastSample(leaseId)?.offsetMs).toBe(batches * 1000)
    } finally {
      ledger.close()
    }
  })

  describe('kill -9 while meters queue samples', () => {
    const LEASES = 50
    let path: string
    let leaseIds: string[]
    beforeEach(() => {
      path = dir.file('meter-crash.db')
      const setup = openLedger(path)
      setup.upsertGpus(simpleGpus(LEASES))
      leaseIds = Array.from({ length: LEASES }, (_, i) => {
        const leaseId = hex32(`meter-crash-${i}`)
        setup.reserveLease(leaseInput(`meter-crash-${i}`, { leaseId, gpuCount: 1, eligibleGpuUuids: [`GPU-${i}`] }))
        setup.transitionLease(leaseId, 'running', 'job started')
        return leaseId
      })
      setup.close()
    })

    /** Runs the fixture until it exits or `stopAt` turns are reported written; returns the last one reported. */
    async function runQueueing (args: string[], stopAt: number): Promise<number> {
      const child = spawn(process.execPath, [`${fixtures}queue-samples.mjs`, path, leaseIds.join(','), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      let lastWritten = -1
      let buffer = ''
      let err = ''
      child.stderr.on('data', (d: Buffer) => { err += d.toString() })
      const exited = once(child, 'exit')
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (d: Buffer) => {
          buffer += d.toString()
          const lines = buffer.split('\n')
          buffer = lines.pop() ?? ''
          for (const line of lines) lastWritten = Number(line)
          if (lastWritten >= stopAt) resolve()
        })
        child.once('exit', () => { resolve() })
      })
      child.kill('SIGKILL')
      const [, signal] = await exited as [number | null, string | null]
      expect(err).toBe('')
      expect(signal).toBe('SIGKILL')
      return lastWritten
    }

    /** Samples per turn (offset / 1000) as stored. */
    function turnsStored (): Map<number, number> {
      expect(integrity(path)).toBe('ok')
      const ledger = openLedger(path)
      try {
        const turns = new Map<number, number>()
        for (const leaseId of leaseIds) {
          for (const sample of ledger.samplesForPeriod(leaseId, 0, Number.MAX_SAFE_INTEGER)) {
            turns.set(sample.offsetMs / 1000, (turns.get(sample.offsetMs / 1000) ?? 0) + 1)
          }
        }
        return turns
      } finally {
        ledger.close()
      }
    }

    it('loses only the turn in flight: every turn reported written is there, each turn whole or not at all', async () => {
      const lastWritten = await runQueueing([], 200)
      expect(lastWritten).toBeGreaterThanOrEqual(200)
      const turns = turnsStored()
      const stored = [...turns.keys()].sort((a, b) => a - b)
      expect(stored.length).toBeGreaterThanOrEqual(lastWritten + 1)
      expect(stored).toEqual(stored.map((_, i) => i))
      for (const count of turns.values()) expect(count).toBe(LEASES)
    })

    /** Usage periods per lease as stored: each lease's indexes must be 0, 1, 2, … */
    function periodsStored (): number[] {
      const ledger = openLedger(path)
      try {
        return leaseIds.map((leaseId) => {
          const periods = ledger.usagePeriods(leaseId)
          expect(periods.map((p) => p.periodIndex)).toEqual(periods.map((_, i) => i))
          expect(periods.at(-1)?.cumulativeAmount ?? 0n).toBe(7n * BigInt(periods.length))
          return periods.length
        })
      } finally {
        ledger.close()
      }
    }

    it('with usage periods queued beside the samples: a kill loses only the turn in flight, whole', async () => {
      const lastWritten = await runQueueing(['-', 'periods'], 150)
      expect(lastWritten).toBeGreaterThanOrEqual(150)
      const turns = turnsStored()
      const periods = periodsStored()
      // Every lease has the same periods (a turn is whole or absent), at least every turn reported written.
      expect(new Set(periods).size).toBe(1)
      expect(periods[0]).toBeGreaterThanOrEqual(lastWritten + 1)
      expect(turns.size).toBe(periods[0])
      for (const count of turns.values()) expect(count).toBe(LEASES)
    })

    it('a kill in the middle of a turn with periods queued loses exactly that turn', async () => {
      const killTurn = 90
      const lastWritten = await runQueueing([String(killTurn), 'periods'], Infinity)
      expect(lastWritten).toBe(killTurn - 1)
      expect(periodsStored()).toEqual(leaseIds.map(() => killTurn))
      expect([...turnsStored().keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: killTurn }, (_, i) => i))
    })

    it('a kill in the middle of a turn loses exactly that turn\'s samples, one per lease', async () => {
      const killTurn = 120
      const lastWritten = await runQueueing([String(killTurn)], Infinity)
      expect(lastWritten).toBe(killTurn - 1)
      const turns = turnsStored()
      expect([...turns.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: killTurn }, (_, i) => i))
      for (const count of turns.values()) expect(count).toBe(LEASES)
    })
  })
})
