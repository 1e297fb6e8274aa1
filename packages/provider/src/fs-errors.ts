import { stat } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * File-system failures said as sentences: what could not be done where, and what to do about it.
 * Used for the data directory (`init`, `provider start`) and anything else a person chose a path for.
 * Null for an error that is not a file-system one.
 */
export async function describeFsError (err: unknown, path: string, what = 'the data directory', option = '--data-dir or GPUMESH_HOME'): Promise<string | null> {
  const code = (err as NodeJS.ErrnoException | null)?.code
  const choose = `or choose another (${option})`
  switch (code) {
    case 'EROFS':
      return `Cannot write to ${what} ${path}: it is on a read-only file system. Remount it read-write ${choose}.`
    case 'EACCES':
    case 'EPERM':
      return `Cannot write to ${what} ${path}: this user may not (${code === 'EPERM' ? 'operation not permitted' : 'permission denied'}). Give this user write access to it (chown or chmod) ${choose}.`
    case 'ENOSPC':
    case 'EDQUOT':
      return `Cannot write to ${what} ${path}: the disk is full${code === 'EDQUOT' ? ' (quota reached)' : ''}. Free some space ${choose}.`
    case 'ENOTDIR':
      return `Cannot use ${what} ${path}: a part of that path is a file, not a directory. Choose another path (${option}).`
    case 'ENOENT': {
      // A recursive mkdir says ENOENT when it cannot make a parent (e.g. on a read-only mount).
      const above = await nearestExisting(dirname(path))
      return above == null
        ? `Cannot create ${what} ${path}: no directory above it exists. Create it first ${choose}.`
        : `Cannot create ${what} ${path}: nothing can be created in ${above}, the nearest directory above it that exists (read-only, or not writable by this user). Create ${path} with the right owner first ${choose}.`
    }
    case 'EISDIR':
      return `Cannot use ${what} ${path}: a file it needs is a directory there. Move that directory away ${choose}.`
    default:
      return null
  }
}

async function nearestExisting (path: string): Promise<string | null> {
  for (let dir = path; ; dir = dirname(dir)) {
    if (await stat(dir).then(() => true, () => false)) return dir
    if (dir === dirname(dir)) return null
  }
}
