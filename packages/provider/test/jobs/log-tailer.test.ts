import { rmSync } from 'node:fs'
import { utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { JobLogTailer, jobPaths, makeJobDirs } from '../../src/jobs/index.js'
import { hex32, tempDir } from './helpers.js'

describe('JobLogTailer', () => {
  const dir = tempDir()
  afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

  it('reports checkpoints found in one poll in the order they were written, not by name', async () => {
    const paths = jobPaths(join(dir, 'jobs'), hex32('tailer'))
    await makeJobDirs(paths)
    const base = Date.now() / 1000 - 60
    // Written in the order 8, 9, 10, 11 (a poll that came late sees them all at once).
    for (const [i, n] of [8, 9, 10, 11].entries()) {
      const file = join(paths.checkpoints, `ckpt-${n}.json`)
      await writeFile(file, '{}')
      await utimes(file, base + i, base + i)
    }
    const seen: string[] = []
    const tailer = new JobLogTailer(paths, { line: () => {}, checkpoint: (name) => { seen.push(name) } }, 60_000, { checkpoints: ['ckpt-8.json'] })
    await tailer.poll(false)
    expect(seen).toEqual(['ckpt-9.json', 'ckpt-10.json', 'ckpt-11.json'])
    await tailer.poll(false)
    expect(seen).toHaveLength(3)
  })
})
