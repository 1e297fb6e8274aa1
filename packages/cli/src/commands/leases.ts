import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LEDGER_FILE } from '@gpumesh/provider'
import { Ledger, isLeaseState, type LeaseRecord, type RejectionRecord } from '@gpumesh/ledger'
import { formatAmount, jsonReplacer } from '@gpumesh/protocol'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { renderTable } from '../table.js'
import { loadProviderConfig } from './provider-config.js'
import type { Command } from '../context.js'

export const leasesCommand: Command = {
  name: 'leases',
  summary: 'List the provider ledger\'s leases (works while the daemon runs or is stopped).',
  usage: 'leases [--json] [--state accepted|running|completed|terminated|failed|expired|rejected] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean', default: false }, state: { type: 'string' }, 'data-dir': { type: 'string' } },
      strict: true
    })
    const state = values.state
    if (state != null && !isLeaseState(state)) {
      throw new CliError('BAD_STATE', `--state must be a lease state (proposed, accepted, running, completed, terminated, failed, rejected, expired), not "${state}".`, { exitCode: EXIT.USAGE })
    }
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const path = join(dataDir, LEDGER_FILE)
    if (!existsSync(path)) {
      throw new CliError('NO_LEDGER', `No ledger in ${dataDir}: the provider has not run there yet.`)
    }
    // The ledger is WAL: reading beside a running daemon is safe; nothing is written here.
    const ledger = new Ledger(path)
    ledger.open()
    let leases: LeaseRecord[] = []
    let rejections: RejectionRecord[] = []
    try {
      if (state === 'rejected') rejections = ledger.listRejections()
      else leases = state == null ? ledger.listLeases() : ledger.listLeases({ state })
    } finally {
      ledger.close()
    }
    if (values.json) {
      ctx.stdout(JSON.stringify(state === 'rejected' ? { rejections } : { leases }, jsonReplacer) + '\n')
      return EXIT.OK
    }
    if (state === 'rejected') {
      if (rejections.length === 0) ctx.stdout('No rejected proposals.\n')
      else ctx.stdout(renderTable(['AT', 'CODE', 'ORDER', 'REASON'], rejections.map((r) => [new Date(r.at).toISOString(), r.code, r.orderId ?? '-', r.message])) + '\n')
      return EXIT.OK
    }
    if (leases.length === 0) {
      ctx.stdout(state == null ? 'No leases yet.\n' : `No ${state} leases.\n`)
      return EXIT.OK
    }
    // Prices in token units by the configured decimals; base units when the config cannot be read.
    const decimals = await loadProviderConfig(ctx, { dataDir: values['data-dir'] }).then((c) => c.pricing.tokenDecimals, () => null)
    const price = (amount: bigint): string => decimals == null ? amount.toString() : formatAmount(amount, decimals)
    const header = ['LEASE', 'STATE', 'GPUS', 'CLASS', decimals == null ? 'PRICE/GPU-H (BASE UNITS)' : 'PRICE/GPU-H', 'RENTER', 'CREATED']
    const rows = leases.map((l) => [l.leaseId.slice(0, 18) + '…', l.state, String(l.gpus.length), l.gpuClass, price(l.pricePerGpuHour), l.renter, new Date(l.createdAt).toISOString()])
    ctx.stdout(renderTable(header, rows) + '\n')
    return EXIT.OK
  }
}
