import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { link, lstat, mkdir, realpath, symlink } from 'node:fs/promises'
import { isAbsolute, join, normalize, relative, resolve, dirname, sep } from 'node:path'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { Parser, type ReadEntry } from 'tar'
import type { Hex } from '@gpumesh/protocol'
import { BundleError } from './errors.js'

export interface ExtractBundleOptions {
  /** Most bytes of the .tar.gz as received. */
  maxCompressedBytes: number
  /** Most bytes of the tar stream once gunzipped (headers included): the zip-bomb cap. */
  maxUncompressedBytes: number
  signal?: AbortSignal
}

export interface ExtractedBundle {
  /** sha256 of the compressed bytes as received, 0x-hex: compare it with the order's jobHash. */
  sha256: Hex
  compressedBytes: number
  uncompressedBytes: number
  /** Regular files written. */
  files: number
}

/**
 * Extracts a job bundle (tar.gz, streamed) into `dir`, which must exist and be empty of anything the
 * bundle names. Refused, with a BundleError and nothing more written: absolute paths, `..` segments,
 * symlinks or hardlinks whose target leaves `dir`, devices, FIFOs and other special entries, duplicate
 * paths, writes through a symlink, and input beyond either size cap. The sha256 of the compressed
 * bytes is computed as they stream; the caller compares it with the lease's jobHash. On error the
 * caller should remove `dir`: entries before the bad one may have been written.
 */
export async function extractBundle (
  source: AsyncIterable<Uint8Array>,
  dir: string,
  options: ExtractBundleOptions
): Promise<ExtractedBundle> {
  const root = await realpath(dir)
  const hash = createHash('sha256')
  let compressed = 0
  let uncompressed = 0
  let files = 0
  let entries = 0
  // An archive with no entries (a job without files) is only its end-of-archive zero blocks; tar's
  // parser warns that it does not recognise such an archive, but it is valid and extracts to nothing.
  let onlyZeros = true
  let failure: unknown = null
  const emptyArchive = (err: unknown): boolean => (err as { code?: string } | null)?.code === 'TAR_BAD_ARCHIVE' && entries === 0 && onlyZeros
  const seen = new Set<string>()

  const parser = new Parser({ strict: true })
  // Entries come one at a time: the parser emits the next only when this one has been consumed.
  let chain: Promise<void> = Promise.resolve()
  parser.on('entry', (entry: ReadEntry) => {
    entries++
    chain = chain.then(async () => {
      if (failure !== null) { entry.resume(); return }
      try {
        files += await writeEntry(root, entry, seen)
      } catch (err) {
        failure ??= err
        entry.resume()
      }
    })
  })
  parser.on('warn', (code: string, message: string | Error) => {
    if (emptyArchive({ code })) return
    failure ??= new BundleError('CORRUPT', `bad tar data: ${code} ${String(message)}`)
  })
  parser.on('error', (err: Error) => {
    if (emptyArchive(err)) return
    failure ??= new BundleError('CORRUPT', `bad tar data: ${err.message}`, null, { cause: err })
  })

  const gunzip = createGunzip()
  const feedRaw = async function * (): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      options.signal?.throwIfAborted()
      compressed += chunk.byteLength
      if (compressed > options.maxCompressedBytes) {
        throw new BundleError('COMPRESSED_TOO_LARGE', `bundle is over ${options.maxCompressedBytes} bytes compressed`)
      }
      hash.update(chunk)
      yield chunk
    }
  }
  const feedParser = async (tarStream: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of tarStream) {
      uncompressed += chunk.byteLength
      if (uncompressed > options.maxUncompressedBytes) {
        throw new BundleError('UNCOMPRESSED_TOO_LARGE', `bundle is over ${options.maxUncompressedBytes} bytes uncompressed`)
      }
      if (failure !== null) throw failure
      if (onlyZeros && chunk.some((b) => b !== 0)) onlyZeros = false
      if (!parser.write(chunk)) await once(parser, 'drain')
    }
    const done = once(parser, 'end')
    parser.end()
    try {
      await done
    } catch (err) {
      if (!emptyArchive(err)) throw err
    }
    await chain
  }

  try {
    await pipeline(feedRaw, gunzip, feedParser)
  } catch (err) {
    if (options.signal?.aborted === true) throw new BundleError('ABORTED', 'bundle upload aborted', null, { cause: err })
    if (err instanceof BundleError) throw err
    if (failure !== null) throw failure
    throw new BundleError('CORRUPT', `bundle is not a valid tar.gz: ${(err as Error).message}`, null, { cause: err })
  }
  await chain
  if (failure === null && entries === 0 && !(onlyZeros && uncompressed >= 1024 && uncompressed % 512 === 0)) {
    failure = new BundleError('CORRUPT', 'bad tar data: no entries and no end-of-archive blocks')
  }
  if (failure !== null) throw failure
  return { sha256: `0x${hash.digest('hex')}`, compressedBytes: compressed, uncompressedBytes: uncompressed, files }
}

/** Checks an archive path and returns it normalised and relative, or throws. */
export function safeEntryPath (path: string): string {
  if (path.includes('\0')) throw new BundleError('CORRUPT', 'path holds a NUL byte', path)
  if (isAbsolute(path) || /^[A-Za-z]:/.test(path) || path.startsWith('\\')) {
    throw new BundleError('ABSOLUTE_PATH', `absolute path ${path}`, path)
  }
  if (path.split(/[\\/]+/).includes('..')) throw new BundleError('PATH_TRAVERSAL', `path ${path} climbs out with ..`, path)
  const normal = normalize(path).replace(/[\\/]+$/, '')
  if (normal === '' || normal === '.') return '.'
  return normal
}

function inside (root: string, target: string): boolean {
  const rel = relative(root, target)
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel))
}

/** Makes the parent directory and proves that, with symlinks resolved, it is still inside root. */
async function safeParent (root: string, target: string, entryPath: string): Promise<void> {
  const parent = dirname(target)
  await mkdir(parent, { recursive: true })
  if (!inside(root, await realpath(parent))) {
    throw new BundleError('LINK_ESCAPES', `${entryPath} would be written through a link out of the job directory`, entryPath)
  }
}

async function writeEntry (root: string, entry: ReadEntry, seen: Set<string>): Promise<number> {
  const path = safeEntryPath(entry.path)
  const target = resolve(root, path)
  if (!inside(root, target)) throw new BundleError('PATH_TRAVERSAL', `path ${entry.path} leaves the job directory`, entry.path)
  if (entry.type !== 'Directory' && path !== '.') {
    if (seen.has(path)) throw new BundleError('DUPLICATE_ENTRY', `${entry.path} appears twice`, entry.path)
    seen.add(path)
  }
  switch (entry.type) {
    case 'Directory':
      if (path !== '.') {
        await safeParent(root, target, entry.path)
        await mkdir(target, { recursive: true, mode: 0o755 })
        if (!inside(root, await realpath(target))) throw new BundleError('LINK_ESCAPES', `${entry.path} is a link out`, entry.path)
      }
      entry.resume()
      return 0
    case 'File':
    case 'OldFile':
    case 'ContiguousFile': {
      await safeParent(root, target, entry.path)
      const mode = (entry.mode ?? 0o644) & 0o755
      // 'wx': never follow or replace an existing file or link.
      await pipeline(entry, createWriteStream(target, { flags: 'wx', mode }))
      return 1
    }
    case 'SymbolicLink': {
      const linkpath = entry.linkpath ?? ''
      if (isAbsolute(linkpath)) throw new BundleError('LINK_ESCAPES', `symlink ${entry.path} points to an absolute path`, entry.path)
      if (!inside(root, resolve(dirname(target), linkpath))) {
        throw new BundleError('LINK_ESCAPES', `symlink ${entry.path} points out of the job directory`, entry.path)
      }
      await safeParent(root, target, entry.path)
      await symlink(linkpath, target)
      entry.resume()
      return 0
    }
    case 'Link': {
      const from = resolve(root, safeEntryPath(entry.linkpath ?? ''))
      if (!inside(root, from)) throw new BundleError('LINK_ESCAPES', `hardlink ${entry.path} points out of the job directory`, entry.path)
      const info = await lstat(from).catch(() => null)
      if (info === null || !info.isFile()) {
        throw new BundleError('LINK_ESCAPES', `hardlink ${entry.path} must point to a regular file extracted before it`, entry.path)
      }
      if (!inside(root, await realpath(from))) throw new BundleError('LINK_ESCAPES', `hardlink ${entry.path} escapes`, entry.path)
      await safeParent(root, target, entry.path)
      await link(from, target)
      entry.resume()
      return 0
    }
    default:
      throw new BundleError('UNSUPPORTED_ENTRY', `${entry.path} is a ${entry.type}; only files, directories and links are allowed`, entry.path)
  }
}

/** Where a bundle's relative path lands under a job's work directory (for callers and tests). */
export function bundlePath (workDir: string, path: string): string {
  return join(workDir, safeEntryPath(path))
}
