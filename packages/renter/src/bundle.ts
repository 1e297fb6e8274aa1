import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, type Stats } from 'node:fs'
import { lstat, mkdir, readdir, realpath } from 'node:fs/promises'
import { isAbsolute, join, normalize, relative, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { create, extract, type ReadEntry } from 'tar'
import type { Bytes32 } from '@gpumesh/protocol'
import { MAX_ARTIFACT_BYTES } from './constants.js'
import { ArchiveError } from './errors.js'

/**
 * Job bundles and artifact archives. A bundle is a tar.gz of the files a job file lists, relative to
 * the job file's directory, streamed to a file while its sha256 is taken (the order's `jobHash`): it is
 * never held in memory. The same tree always gives the same bytes: entries in sorted order, no owners,
 * a fixed mtime and a gzip header without a time stamp.
 */

export interface BuildBundleOptions {
  /** The directory the listed paths are relative to (the job file's). */
  baseDir: string
  /** Files and directories to include; directories are included whole. */
  files: readonly string[]
  /** Where the tar.gz is written. */
  destFile: string
  signal?: AbortSignal
}

export interface BuiltBundle {
  path: string
  /** sha256 of the tar.gz bytes, 0x-hex: the order's jobHash. */
  sha256: Bytes32
  /** Size of the tar.gz in bytes. */
  size: number
  /** Paths in the archive, in order (directories end with `/`). */
  entries: string[]
}

/** Every entry is stored with this mtime, so a touched file does not change the hash. */
const FIXED_MTIME = new Date(0)

/** Builds the bundle. Throws {@link ArchiveError} for a path outside `baseDir`, missing, or not a file or directory. */
export async function buildBundle (options: BuildBundleOptions): Promise<BuiltBundle> {
  const root = await realpath(options.baseDir)
  const entries = await listEntries(root, options.files)
  let size = 0
  const hash = createHash('sha256')
  const hashing = async function * (source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      hash.update(chunk)
      size += chunk.byteLength
      yield chunk
    }
  }
  const signal = options.signal != null ? { signal: options.signal } : {}
  try {
    // Gzip by node:zlib (header mtime 0, no name); tar writes plain tar with fixed metadata.
    const tarStream = entries.length > 0
      ? create({ cwd: root, portable: true, noDirRecurse: true, mtime: FIXED_MTIME, strict: true }, entries.map(stripSlash))
      : emptyTar()
    await pipeline(tarStream, createGzip({ level: 6 }), hashing, createWriteStream(options.destFile, { mode: 0o600 }), signal)
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new ArchiveError('IO', `could not write the bundle ${options.destFile}: ${(err as Error).message}`, options.destFile, { cause: err })
  }
  return { path: options.destFile, sha256: `0x${hash.digest('hex')}`, size, entries }
}

/** sha256 of a file, streamed, as 0x-hex. */
export async function sha256File (path: string, signal?: AbortSignal): Promise<Bytes32> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, signal != null ? { signal } : {})) hash.update(chunk as Buffer)
  return `0x${hash.digest('hex')}`
}

/** Reads a bundle back as chunks, for upload. */
export function readBundle (path: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
  return createReadStream(path, { highWaterMark: 256 * 1024, ...(signal != null ? { signal } : {}) })
}

export interface ExtractedArtifacts {
  files: number
  bytes: number
  /** Entries left out: links, devices and anything else that is not a plain file or directory. */
  skipped: string[]
}

/**
 * Unpacks an artifact archive (tar.gz from the provider) into `destDir`. Only plain files and
 * directories are written, never outside `destDir` (absolute paths and `..` are refused by tar), and
 * no more than `maxBytes` in all.
 */
export async function extractArtifacts (archive: string, destDir: string, maxBytes = MAX_ARTIFACT_BYTES): Promise<ExtractedArtifacts> {
  await mkdir(destDir, { recursive: true })
  let files = 0
  let bytes = 0
  const skipped: string[] = []
  let overflow = false
  try {
    await extract({
      file: archive,
      cwd: destDir,
      strict: true,
      preservePaths: false,
      filter: (path: string, entry: ReadEntry | Stats) => {
        const e = entry as ReadEntry
        if (e.type !== 'File' && e.type !== 'Directory') { skipped.push(path); return false }
        if (e.type === 'File') {
          if (bytes + (e.size ?? 0) > maxBytes) { overflow = true; skipped.push(path); return false }
          bytes += e.size ?? 0
          files++
        }
        return true
      }
    })
  } catch (err) {
    throw new ArchiveError('IO', `could not unpack the artifacts ${archive}: ${(err as Error).message}`, archive, { cause: err })
  }
  if (overflow) throw new ArchiveError('IO', `the artifacts are larger than ${maxBytes} bytes unpacked; the rest was left in ${archive}`, archive)
  return { files, bytes, skipped }
}

/** Expands the listed paths into a sorted, de-duplicated list of entries (directories end with `/`). */
async function listEntries (root: string, files: readonly string[]): Promise<string[]> {
  const out = new Set<string>()
  const add = async (rel: string): Promise<void> => {
    const abs = join(root, rel)
    let st
    try {
      st = await lstat(abs)
    } catch (err) {
      throw new ArchiveError('NOT_FOUND', `"${rel}" is listed in files but does not exist next to the job file`, rel, { cause: err })
    }
    if (st.isSymbolicLink()) {
      const target = await realpath(abs).catch(() => null)
      if (target == null || !inside(root, target)) throw new ArchiveError('OUTSIDE_JOB_DIR', `"${rel}" is a link that leads outside the job file's directory`, rel)
      out.add(rel)
    } else if (st.isDirectory()) {
      // Parents first, so that extraction creates them before their contents.
      out.add(rel + '/')
      const names = (await readdir(abs)).sort()
      for (const name of names) await add(rel === '.' ? name : `${rel}/${name}`)
    } else if (st.isFile()) {
      out.add(rel)
    } else {
      throw new ArchiveError('UNSUPPORTED_ENTRY', `"${rel}" is neither a file nor a directory`, rel)
    }
  }
  for (const file of files) {
    const rel = normalize(file).split(sep).join('/').replace(/\/+$/, '')
    if (isAbsolute(file) || rel === '..' || rel.startsWith('../')) throw new ArchiveError('OUTSIDE_JOB_DIR', `"${file}" is outside the job file's directory`, file)
    if (rel === '.' || rel === '') {
      for (const name of (await readdir(root)).sort()) await add(name)
    } else {
      // Parent directories of a nested path come first, without their other contents.
      const parts = rel.split('/')
      for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join('/') + '/')
      await add(rel)
    }
  }
  return [...out].sort(compareEntries)
}

/** Sort so that a directory comes right before its contents, byte order otherwise. */
function compareEntries (a: string, b: string): number {
  const x = stripSlash(a).split('/')
  const y = stripSlash(b).split('/')
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i] ?? ''
    const q = y[i] ?? ''
    if (p !== q) return p < q ? -1 : 1
  }
  return x.length - y.length
}

function stripSlash (p: string): string {
  return p.endsWith('/') ? p.slice(0, -1) : p
}

function inside (root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}

/** A tar archive without entries: two zero blocks. */
async function * emptyTar (): AsyncGenerator<Uint8Array> {
  yield new Uint8Array(1024)
}
