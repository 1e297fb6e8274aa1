import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LIMITS, type JobEvent } from '@gpumesh/protocol'
import { JobEventLog, JobLogTailer, jobPaths, type JobPaths } from '../../src/jobs/index.js'
import { hex32, tempDir } from './helpers.js'

const LEASE = hex32('event-log')

describe('JobEventLog on its event file', () => {
  let dir: string
  let file: string
  beforeEach(() => { dir = tempDir(); file = join(dir, 'events.jsonl') })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  it('reloads the same sequences after a torn last line, numbers on, and reads beyond what memory holds', async () => {
    const log = new JobEventLog(LEASE, { file, maxHistory: 3 })
    log.append(1, { kind: 'started' })
    for (let i = 1; i <= 9; i++) log.append(1 + i, { kind: 'log', stream: 'stdout', text: `line ${i}` }, i * 7)
    log.append(20, { kind: 'checkpoint', text: 'ckpt-1.json' })
    log.close()
    expect(log.history().map((e) => e.sequence)).toEqual([9, 10, 11])
    const all: JobEvent[] = []
    for await (const e of log.read(0)) all.push(e)
    expect(all.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    const fromFive: JobEvent[] = []
    for await (const e of log.read(5, 8)) fromFive.push(e)
    expect(fromFive.map((e) => e.sequence)).toEqual([6, 7, 8])

    appendFileSync(file, '{"type":"job-event","sequ') // a kill -9 mid-write
    const { log: again, state } = await JobEventLog.load(LEASE, file, { maxHistory: 3 })
    expect(again.lastSequence).toBe(11)
    expect(state).toMatchObject({ logEnd: { stdout: 63, stderr: 0 }, lastPeriodIndex: -1 })
    expect([...state.checkpoints]).toEqual(['ckpt-1.json'])
    expect(again.append(30, { kind: 'exit', exitCode: 0, state: 'completed' }).sequence).toBe(12)
    again.close()
    const lines = readFileSync(file, 'utf8').split('\n')
    expect(lines.at(-1)).toBe('')
    expect(lines.slice(0, -1).map((l) => (JSON.parse(l) as { sequence: number }).sequence)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  })
})

describe('JobLogTailer offsets', () => {
  let paths: JobPaths
  beforeEach(() => {
    paths = jobPaths(tempDir(), LEASE)
    mkdirSync(join(paths.root, 'logs'), { recursive: true })
    mkdirSync(paths.checkpoints, { recursive: true })
  })
  afterEach(() => { rmSync(paths.root, { recursive: true, force: true }) })

  const tail = async (from: { stdout?: number, checkpoints?: string[] } = {}): Promise<Array<{ text: string, end: number }>> => {
    const lines: Array<{ text: string, end: number }> = []
    const tailer = new JobLogTailer(paths, { line: (_s, text, end) => { lines.push({ text, end }) }, checkpoint: () => {} }, 1000, from)
    await tailer.poll(false)
    return lines
  }

  it('gives each line the offset just past it; a tailer started there sends only what follows', async () => {
    writeFileSync(paths.stdoutLog, 'one\r\ntwo\nthr')
    const first = await tail()
    expect(first).toEqual([{ text: 'one', end: 5 }, { text: 'two', end: 9 }])
    appendFileSync(paths.stdoutLog, 'ee\nfour\n')
    expect(await tail({ stdout: 9 })).toEqual([{ text: 'three', end: 15 }, { text: 'four', end: 20 }])
  })

  it('splits a long line on UTF-8 boundaries into pieces that fit an event, each with its own offset', async () => {
    const long = 'é'.repeat(LIMITS.logLine) // 2 bytes each
    writeFileSync(paths.stdoutLog, long + '\n')
    const pieces = await tail()
    expect(pieces.map((p) => p.text).join('')).toBe(long)
    expect(pieces.every((p) => p.text.length <= LIMITS.logLine && !p.text.includes('\uFFFD'))).toBe(true)
    expect(pieces.at(-1)?.end).toBe(Buffer.byteLength(long) + 1)
    const resumed = await tail({ stdout: pieces[0]?.end ?? 0 })
    expect(resumed.map((p) => p.text)).toEqual(pieces.slice(1).map((p) => p.text))
  })
})
