import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeFsError } from '../src/index.js'

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: failed`), { code })
const failure = async (action: () => Promise<unknown>): Promise<unknown> => await action().then(() => null, (err: unknown) => err)

describe('describeFsError', () => {
  let base: string
  beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'gpumesh-fs-errors-')) })
  afterAll(async () => { await rm(base, { recursive: true, force: true }) })

  it('says what went wrong where and what to do, for real failures', async () => {
    await writeFile(join(base, 'a-file'), '')
    const underFile = join(base, 'a-file', 'data')
    expect(await describeFsError(await failure(async () => await mkdir(underFile, { recursive: true })), underFile))
      .toBe(`Cannot use the data directory ${underFile}: a part of that path is a file, not a directory. Choose another path (--data-dir or GPUMESH_HOME).`)
    // sysfs is read-only for everyone: EACCES for a user, EPERM for root.
    const sys = '/sys/gpumesh-data'
    expect(await describeFsError(await failure(async () => await mkdir(sys)), sys)).toMatch(/^Cannot write to the data directory \/sys\/gpumesh-data: this user may not \(.*\)\. Give this user write access to it \(chown or chmod\) or choose another \(--data-dir or GPUMESH_HOME\)\.$/)
    expect(await describeFsError(await failure(async () => { await writeFile('/dev/full', 'x') }), '/dev/full', 'the file'))
      .toBe('Cannot write to the file /dev/full: the disk is full. Free some space or choose another (--data-dir or GPUMESH_HOME).')
  })

  it('names the read-only file system, and for a missing parent the directory above that cannot be written', async () => {
    expect(await describeFsError(errno('EROFS'), '/mnt/ro/gpumesh')).toBe('Cannot write to the data directory /mnt/ro/gpumesh: it is on a read-only file system. Remount it read-write or choose another (--data-dir or GPUMESH_HOME).')
    expect(await describeFsError(errno('ENOENT'), '/sys/none/gpumesh')).toBe('Cannot create the data directory /sys/none/gpumesh: nothing can be created in /sys, the nearest directory above it that exists (read-only, or not writable by this user). Create /sys/none/gpumesh with the right owner first or choose another (--data-dir or GPUMESH_HOME).')
    expect(await describeFsError(new Error('not a file-system error'), '/x')).toBeNull()
  })
})
