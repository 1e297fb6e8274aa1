import { mkdir, open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { kill, pid as ownPid } from 'node:process'
import { ProviderStartError } from './errors.js'
import { describeFsError } from './fs-errors.js'
import { isSameProcessAlive, readProcessStat } from './jobs/proc.js'

/** The file in the data directory that says which process runs the daemon there. */
export const LOCK_FILE = 'daemon.lock'

export interface DataDirLock {
  /** Removes the lock file if it is still this process's. */
  release: () => Promise<void>
}

export interface Holder { pid: number, startTime: number | null }

/**
 * Takes the data directory for this process: one daemon per ledger, or two would reserve the same GPUs.
 * The lock file holds the pid and its start time; a lock whose process is gone (a crash, a kill -9)
 * or whose pid now names another process is stale and taken over.
 */
export async function lockDataDir (dataDir: string): Promise<DataDirLock> {
  try {
    return await takeLock(dataDir)
  } catch (err) {
    const sentence = await describeFsError(err, dataDir)
    if (sentence != null) throw new ProviderStartError('DATA_DIR_UNUSABLE', sentence, { cause: err })
    throw err
  }
}

async function takeLock (dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  return await lockProcessFile(join(dataDir, LOCK_FILE), (holder) => new ProviderStartError('DATA_DIR_IN_USE',
    `Another gpumesh provider (pid ${holder.pid}) is running from ${dataDir}. Stop it first, or give this one its own data directory (--data-dir).`))
}

/**
 * Takes `path` for this process (pid and start time written into it, created exclusively); throws what
 * `busy` makes while a live process holds it, and takes over a lock whose process is gone.
 */
export async function lockProcessFile (path: string, busy: (holder: Holder) => Error): Promise<DataDirLock> {
  const self: Holder = { pid: ownPid, startTime: (await readProcessStat(ownPid))?.startTime ?? null }
  const body = JSON.stringify(self)
  for (let attempt = 0; ; attempt++) {
    try {
      const file = await open(path, 'wx', 0o600)
      try {
        await file.writeFile(body)
        await file.sync()
      } finally {
        await file.close()
      }
      return {
        release: async () => {
          const now = await readFile(path, 'utf8').catch(() => null)
          if (now === body) await unlink(path).catch(() => {})
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 2) throw err
    }
    const holder = parseHolder(await readFile(path, 'utf8').catch(() => ''))
    if (holder != null && await isAlive(holder)) throw busy(holder)
    await unlink(path).catch(() => {}) // stale: its process is gone
  }
}

function parseHolder (text: string): Holder | null {
  try {
    const raw = JSON.parse(text) as { pid?: unknown, startTime?: unknown }
    if (!Number.isSafeInteger(raw.pid) || (raw.pid as number) <= 0) return null
    return { pid: raw.pid as number, startTime: Number.isSafeInteger(raw.startTime) ? raw.startTime as number : null }
  } catch {
    return null
  }
}

async function isAlive (holder: Holder): Promise<boolean> {
  if (holder.startTime != null) return await isSameProcessAlive(holder.pid, holder.startTime)
  try {
    kill(holder.pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
