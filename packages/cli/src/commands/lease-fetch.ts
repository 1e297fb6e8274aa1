import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { marketDomain } from '@gpumesh/protocol'
import { downloadArtifacts, extractArtifacts } from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { openLease, renterCliError, withRenterNode } from './lease-common.js'
import { DEFAULT_OUT_DIR } from './lease-submit.js'
import type { Command } from '../context.js'

export const leaseFetchCommand: Command = {
  name: 'lease fetch',
  summary: 'Download a finished lease\'s artifacts (output and checkpoints) while the provider keeps them.',
  usage: 'lease fetch LEASE_ID [--out DIR] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      allowPositionals: true,
      strict: true
    })
    if (positionals.length !== 1) throw new CliError('BAD_OPTION', 'Give one lease id: gpumesh lease fetch 0x1f3a….', { exitCode: EXIT.USAGE })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    try {
      const { store, record, identity } = await openLease(dataDir, positionals[0] ?? '', ctx)
      const outDir = resolve(ctx.cwd, values.out ?? DEFAULT_OUT_DIR, record.leaseId)
      await mkdir(outDir, { recursive: true })
      const archive = join(outDir, 'artifacts.tar.gz')
      const got = await withRenterNode(identity, async (node) =>
        await downloadArtifacts({ node, wallet: identity.wallet, terms: record.terms, marketDomain: marketDomain(record.terms.chainId), destFile: archive, signal: ctx.signal }))
      const unpacked = await extractArtifacts(archive, outDir)
      const current = await store.load(record.leaseId)
      current.artifactsDir = outDir
      current.updatedAt = Date.now()
      await store.save(current)
      if (values.json) {
        ctx.stdout(JSON.stringify({ leaseId: record.leaseId, artifactsDir: outDir, archive, bytes: got.bytes, sha256: got.sha256, files: unpacked.files, skipped: unpacked.skipped }) + '\n')
      } else {
        ctx.stdout(`artifacts  ${outDir} (${unpacked.files} file${unpacked.files === 1 ? '' : 's'}, ${got.bytes} bytes, sha256 ${got.sha256.slice(2, 14)}…)\n`)
      }
      return EXIT.OK
    } catch (err) {
      throw renterCliError(err)
    }
  }
}
