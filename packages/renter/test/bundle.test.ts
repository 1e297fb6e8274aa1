import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { list } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildBundle, extractArtifacts, sha256File } from '../src/bundle.js'
import type { ArchiveError } from '../src/errors.js'

describe('job bundle', () => {
  let dir: string
  let out: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gpumesh-bundle-'))
    out = await mkdtemp(join(tmpdir(), 'gpumesh-bundle-out-'))
    await writeFile(join(dir, 'train.mjs'), 'console.log("train")\n')
    await mkdir(join(dir, 'data', 'b'), { recursive: true })
    await writeFile(join(dir, 'data', 'z.bin'), Buffer.alloc(300_000, 7))
    await writeFile(join(dir, 'data', 'a.txt'), 'a\n')
    await writeFile(join(dir, 'data', 'b', 'c.txt'), 'c\n')
    await writeFile(join(dir, 'unlisted.txt'), 'not in the bundle\n')
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
    await rm(out, { recursive: true, force: true })
  })

  it('hashes what it writes: the sha256 equals a streamed sha256 of the file', async () => {
    const built = await buildBundle({ baseDir: dir, files: ['train.mjs', 'data/'], destFile: join(out, 'one.tar.gz') })
    expect(built.sha256).toMatch(/^0x[0-9a-f]{64}$/)
    expect(await sha256File(built.path)).toBe(built.sha256)
    const bytes = await readFile(built.path)
    expect(built.size).toBe(bytes.length)
    expect(`0x${createHash('sha256').update(bytes).digest('hex')}`).toBe(built.sha256)
    expect(built.entries).toEqual(['data/', 'data/a.txt', 'data/b/', 'data/b/c.txt', 'data/z.bin', 'train.mjs'])
    const names: string[] = []
    await list({ file: built.path, onReadEntry: (e) => { names.push(e.path) } })
    expect(names).toEqual(built.entries)
  })

  it('is stable: same tree, touched files, other listing order and duplicates give the same hash', async () => {
    const first = await buildBundle({ baseDir: dir, files: ['train.mjs', 'data/'], destFile: join(out, 'a.tar.gz') })
    await utimes(join(dir, 'data', 'a.txt'), new Date(), new Date(Date.now() - 86_400_000))
    const second = await buildBundle({ baseDir: dir, files: ['data', 'train.mjs', 'data/b/c.txt'], destFile: join(out, 'b.tar.gz') })
    expect(second.sha256).toBe(first.sha256)
    await writeFile(join(dir, 'data', 'a.txt'), 'changed\n')
    const third = await buildBundle({ baseDir: dir, files: ['train.mjs', 'data/'], destFile: join(out, 'c.tar.gz') })
    expect(third.sha256).not.toBe(first.sha256)
    await writeFile(join(dir, 'data', 'a.txt'), 'a\n')
  })

  it('builds an empty bundle when no files are listed', async () => {
    const built = await buildBundle({ baseDir: dir, files: [], destFile: join(out, 'empty.tar.gz') })
    expect(built.entries).toEqual([])
    expect(await sha256File(built.path)).toBe(built.sha256)
  })

  it('refuses missing paths, paths outside the directory and links out of it', async () => {
    const code = async (files: string[]): Promise<string> => {
      try {
        await buildBundle({ baseDir: dir, files, destFile: join(out, 'x.tar.gz') })
        return 'BUILT'
      } catch (err) {
        expect((err as Error).name).toBe('ArchiveError')
        return (err as ArchiveError).code
      }
    }
    expect(await code(['nope.txt'])).toBe('NOT_FOUND')
    expect(await code(['../etc'])).toBe('OUTSIDE_JOB_DIR')
    await symlink('/etc/hostname', join(dir, 'escape'))
    expect(await code(['escape'])).toBe('OUTSIDE_JOB_DIR')
    await rm(join(dir, 'escape'))
  })

  it('unpacks artifacts into a directory, files and directories only', async () => {
    const built = await buildBundle({ baseDir: dir, files: ['data'], destFile: join(out, 'art.tar.gz') })
    const dest = join(out, 'unpacked')
    const got = await extractArtifacts(built.path, dest)
    expect(got.files).toBe(3)
    expect(await readFile(join(dest, 'data', 'b', 'c.txt'), 'utf8')).toBe('c\n')
    await expect(extractArtifacts(built.path, join(out, 'small'), 1000)).rejects.toMatchObject({ name: 'ArchiveError' })
  })
})
