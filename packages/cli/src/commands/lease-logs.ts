import { parseArgs } from 'node:util'
import type { JobFollowResult } from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { EXIT } from '../errors.js'
import { attachRecordedLease, openLease, renterCliError, renterNode, saveAttachResult } from './lease-common.js'
import { printEvent } from './lease-submit.js'
import type { Command } from '../context.js'

/** Without --follow, the logs are done once nothing new arrived for this long. */
const IDLE_MS = 2_000

export const leaseLogsCommand: Command = {
  name: 'lease logs',
  summary: 'Print a lease\'s job logs from the provider, from the start; --follow keeps streaming until the job ends.',
  usage: 'lease logs LEASE_ID [--follow] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        follow: { type: 'boolean', short: 'f', default: false },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      allowPositionals: true,
      strict: true
    })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    try {
      const { store, record, identity } = await openLease(dataDir, positionals[0] ?? '', ctx)
      const node = await renterNode(identity)
      const controller = new AbortController()
      const stop = (): void => { controller.abort() }
      ctx.signal.addEventListener('abort', stop, { once: true })
      let idle: NodeJS.Timeout | null = null
      const touch = (): void => {
        if (values.follow) return
        if (idle != null) clearTimeout(idle)
        idle = setTimeout(stop, IDLE_MS)
      }
      touch()
      let ended: JobFollowResult | null = null
      try {
        const outcome = await attachRecordedLease(node, identity, record, {
          signal: controller.signal,
          fromSequence: 0,
          onEvent: (e) => {
            touch()
            if (values.json) ctx.stdout(JSON.stringify({ sequence: e.sequence, at: e.at, kind: e.kind, stream: e.stream ?? null, text: e.text ?? null }) + '\n')
            else printEvent(e, ctx, false)
          }
        })
        ended = outcome
        if (!values.json) ctx.stderr(`gpumesh: the job ended ${outcome.state}${outcome.exitCode != null ? ` with exit code ${outcome.exitCode}` : ''}.\n`)
      } catch (err) {
        if (!controller.signal.aborted) throw err
      } finally {
        // Attaching pays reports as a submit would: the record keeps the newest voucher and the end.
        await saveAttachResult(store, record, ended)
        if (idle != null) clearTimeout(idle)
        ctx.signal.removeEventListener('abort', stop)
        await node.stop()
      }
      return EXIT.OK
    } catch (err) {
      throw renterCliError(err)
    }
  }
}
