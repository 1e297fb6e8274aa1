import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generatePeerKey, peerKeyFromBytes, peerKeyToBytes } from '@gpumesh/net'
import { createMatcher } from '@gpumesh/matcher'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import { MATCHER_INFO_FILE, resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { createCliLogger } from '../log.js'
import { writeSecret } from '../identity.js'
import type { Command, CommandContext } from '../context.js'

/** The matcher's own peer key (a matcher has no payment key), apart from a provider's `peer.key`. */
export const MATCHER_KEY_FILE = 'matcher-peer.key'

export const matcherStartCommand: Command = {
  name: 'matcher start',
  summary: 'Run a matcher in the foreground: collect offers, match orders, serve the book (stops on Ctrl-C).',
  usage: 'matcher start [--listen ADDR...] [--bootstrap ADDR...] [--data-dir DIR] [--json-log]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string', multiple: true },
        bootstrap: { type: 'string', multiple: true },
        'data-dir': { type: 'string' },
        'json-log': { type: 'boolean', default: false }
      },
      strict: true
    })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const peerKey = await loadOrCreatePeerKey(join(dataDir, MATCHER_KEY_FILE))
    const logger = makeLogger(values['json-log'], ctx)
    const matcher = createMatcher({
      peerKey,
      ...(values.listen != null ? { listen: values.listen } : {}),
      ...(values.bootstrap != null ? { bootstrap: values.bootstrap } : {})
    }, { logger })
    if (ctx.signal.aborted) return EXIT.OK
    await matcher.start()
    try {
      const peerId = matcher.node.peerId.toString()
      const addresses = matcher.node.getMultiaddrs().map(String)
      await writeFile(join(dataDir, MATCHER_INFO_FILE), JSON.stringify({ peerId, addresses, startedAt: new Date().toISOString() }, null, 2) + '\n')
      ctx.stdout(`matcher ${peerId}\n${addresses.map((a) => `  listening on ${a}\n`).join('')}`)
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve()
        else ctx.signal.addEventListener('abort', () => { resolve() }, { once: true })
      })
    } finally {
      await matcher.stop()
    }
    ctx.stdout('matcher stopped\n')
    return EXIT.OK
  }
}

async function loadOrCreatePeerKey (path: string): Promise<Ed25519PrivateKey> {
  let bytes: Uint8Array | null = null
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError('PEER_KEY_UNREADABLE', `Cannot read the matcher's peer key ${path}: ${(err as Error).message}.`, { cause: err })
  }
  if (bytes != null) {
    try {
      return peerKeyFromBytes(bytes)
    } catch (err) {
      throw new CliError('PEER_KEY_INVALID', `${path} is not a peer key. Move it away to start with a new identity.`, { cause: err })
    }
  }
  const key = await generatePeerKey()
  await writeSecret(path, peerKeyToBytes(key))
  return key
}

/** pino to stderr: JSON lines with --json-log, else one readable line per record. */
function makeLogger (json: boolean, ctx: CommandContext): Logger {
  return createCliLogger({ json, base: { role: 'matcher' }, write: (line) => { ctx.stderr(line) } })
}
