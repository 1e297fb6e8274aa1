import { randomBytes } from 'node:crypto'
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PROVIDER_FILE } from './constants.js'

/**
 * `provider.json` in the data directory: how local tools reach a running daemon. It holds the API
 * token, so it is written with mode 0600. Removed on a clean stop; after a crash it stays, and a
 * reader finds the API unreachable.
 */
export interface ProviderFile {
  pid: number
  peerId: string
  paymentAddress: string
  addresses: string[]
  api: { url: string, token: string } | null
  startedAt: number
}

export function providerFilePath (dataDir: string): string {
  return join(dataDir, PROVIDER_FILE)
}

/** Written whole (a temp file, then rename): a reader never sees half of it. */
export async function writeProviderFile (dataDir: string, info: ProviderFile): Promise<void> {
  const path = providerFilePath(dataDir)
  const next = `${path}.${randomBytes(6).toString('hex')}.tmp`
  await writeFile(next, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 })
  await chmod(next, 0o600)
  await rename(next, path)
}

/** The file's content, or null when there is none (the daemon never ran or stopped cleanly). */
export async function readProviderFile (dataDir: string): Promise<ProviderFile | null> {
  let text: string
  try {
    text = await readFile(providerFilePath(dataDir), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  return JSON.parse(text) as ProviderFile
}

export async function removeProviderFile (dataDir: string): Promise<void> {
  await rm(providerFilePath(dataDir), { force: true })
}
