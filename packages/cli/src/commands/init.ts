import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { describeFsError, renderConfigTemplate } from '@gpumesh/provider'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { CONFIG_FILE, createIdentity } from '../identity.js'
import { obtainPassword } from '../prompt.js'
import type { Command } from '../context.js'

export const initCommand: Command = {
  name: 'init',
  summary: 'Create the data directory: a peer key, an encrypted payment key and a commented config.yaml.',
  usage: 'init [--data-dir DIR] [--role provider|renter] [--force] [--insecure-empty-password] [--json]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        role: { type: 'string', default: 'provider' },
        force: { type: 'boolean', default: false },
        'insecure-empty-password': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false }
      },
      strict: true
    })
    if (values.role !== 'provider' && values.role !== 'renter') {
      throw new CliError('BAD_ROLE', `--role must be provider or renter, not "${values.role}".`, { exitCode: EXIT.USAGE })
    }
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const password = await obtainPassword(ctx, { confirm: true, allowEmpty: values['insecure-empty-password'] })
    const configPath = join(dataDir, CONFIG_FILE)
    let wroteConfig = false
    let identity: Awaited<ReturnType<typeof createIdentity>>
    try {
      identity = await createIdentity(dataDir, { password, force: values.force })
      if (values.role === 'provider' && (values.force || !await fileExists(configPath))) {
        await writeFile(configPath, renderConfigTemplate(dataDir), { mode: 0o644 })
        wroteConfig = true
      }
    } catch (err) {
      const sentence = await describeFsError(err, dataDir)
      if (sentence != null) throw new CliError('DATA_DIR_UNUSABLE', sentence, { cause: err })
      throw err
    }
    if (values.json) {
      ctx.stdout(JSON.stringify({ dataDir, role: values.role, peerId: identity.peerId, address: identity.address, config: wroteConfig ? configPath : null }) + '\n')
    } else {
      ctx.stdout([
        `Created a ${values.role} identity in ${dataDir}`,
        `  peer id          ${identity.peerId}`,
        `  payment address  ${identity.address}`,
        wroteConfig ? `  config           ${configPath} (every key at its default, commented)` : null,
        'Keep the password safe: without it the payment key cannot be unlocked.'
      ].filter((l) => l != null).join('\n') + '\n')
    }
    return EXIT.OK
  }
}

async function fileExists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}
