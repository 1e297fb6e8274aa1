import { existsSync, readFileSync, readdirSync, rmSync, mkdirSync, readlinkSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { extractBundle } from '../../src/jobs/index.js'
import { chunks, rawTarGz, tempDir, type RawEntry } from './helpers.js'

const CAPS = { maxCompressedBytes: 1 << 20, maxUncompressedBytes: 1 << 20 }

describe('extractBundle', () => {
  let dir: string
  let work: string
  beforeEach(() => { dir = tempDir(); work = join(dir, 'work'); mkdirSync(work) })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  const code = async (entries: RawEntry[], caps = CAPS): Promise<string> => {
    try {
      await extractBundle(chunks(rawTarGz(entries)), work, caps)
    } catch (err) {
      expect((err as Error).name).toBe('BundleError')
      return (err as { code: string }).code
    }
    return 'OK'
  }

  it('extracts files, directories and inner links, and returns the sha256 of the compressed bytes', async () => {
    const gz = rawTarGz([
      { path: 'src/', type: 'Directory' },
      { path: 'src/train.py', body: 'print("hi")\n' },
      { path: 'run.sh', body: '#!/bin/sh\n' },
      { path: 'latest', type: 'SymbolicLink', linkpath: 'src/train.py' },
      { path: 'copy.py', type: 'Link', linkpath: 'src/train.py' }
    ])
    const result = await extractBundle(chunks(gz, 100), work, CAPS)
    expect(result.sha256).toBe('0x' + createHash('sha256').update(gz).digest('hex'))
    expect(result.compressedBytes).toBe(gz.length)
    expect(result.files).toBe(2)
    expect(readFileSync(join(work, 'src/train.py'), 'utf8')).toBe('print("hi")\n')
    expect(readlinkSync(join(work, 'latest'))).toBe('src/train.py')
    expect(readFileSync(join(work, 'copy.py'), 'utf8')).toBe('print("hi")\n')
  })

  it('refuses path traversal, absolute paths, escaping links and devices', async () => {
    expect(await code([{ path: '../evil', body: 'x' }])).toBe('PATH_TRAVERSAL')
    expect(await code([{ path: 'a/../../evil', body: 'x' }])).toBe('PATH_TRAVERSAL')
    expect(existsSync(join(dir, 'evil'))).toBe(false)
    expect(await code([{ path: '/etc/evil', body: 'x' }])).toBe('ABSOLUTE_PATH')
    expect(await code([{ path: 'up', type: 'SymbolicLink', linkpath: '../..' }])).toBe('LINK_ESCAPES')
    expect(await code([{ path: 'abs', type: 'SymbolicLink', linkpath: '/etc/passwd' }])).toBe('LINK_ESCAPES')
    expect(await code([{ path: 'hard', type: 'Link', linkpath: '../outside' }])).toBe('PATH_TRAVERSAL')
    expect(await code([{ path: 'tty', type: 'CharacterDevice' }])).toBe('UNSUPPORTED_ENTRY')
    expect(await code([{ path: 'fifo', type: 'FIFO' }])).toBe('UNSUPPORTED_ENTRY')
  })

  it('allows writing through a symlink that stays inside the job directory', async () => {
    // A link to "." is inside; a file written through it stays inside and is allowed.
    expect(await code([{ path: 'here', type: 'SymbolicLink', linkpath: '.' }, { path: 'here/f', body: 'ok' }])).toBe('OK')
    expect(readFileSync(join(work, 'f'), 'utf8')).toBe('ok')
  })

  it('refuses a bundle over the compressed or the uncompressed cap', async () => {
    const big = 'a'.repeat(300_000) // compresses to a few hundred bytes
    expect(await code([{ path: 'big', body: big }], { maxCompressedBytes: 100, maxUncompressedBytes: 1 << 20 })).toBe('COMPRESSED_TOO_LARGE')
    expect(await code([{ path: 'big', body: big }], { maxCompressedBytes: 1 << 20, maxUncompressedBytes: 100_000 })).toBe('UNCOMPRESSED_TOO_LARGE')
  })

  it('refuses data that is not a tar.gz', async () => {
    await expect(extractBundle(chunks(Buffer.from('not gzip at all')), work, CAPS)).rejects.toMatchObject({ code: 'CORRUPT' })
  })

  it('extracts an archive without entries (its end-of-archive blocks only) to nothing; an empty or half stream stays refused', async () => {
    await expect(extractBundle(chunks(gzipSync(Buffer.alloc(1024))), work, CAPS)).resolves.toMatchObject({ files: 0, uncompressedBytes: 1024 })
    expect(readdirSync(work)).toEqual([])
    await expect(extractBundle(chunks(gzipSync(Buffer.alloc(0))), work, CAPS)).rejects.toMatchObject({ code: 'CORRUPT' })
    await expect(extractBundle(chunks(gzipSync(Buffer.alloc(700))), work, CAPS)).rejects.toMatchObject({ code: 'CORRUPT' })
  })
})
