import { parseArgs } from 'node:util'
import { formatAmount, marketDomain } from '@gpumesh/protocol'
import { cancelJob } from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { EXIT } from '../errors.js'
import { openLease, renterCliError, withRenterNode } from './lease-common.js'
import type { Command } from '../context.js'

export const leaseCancelCommand: Command = {
  name: 'lease cancel',
  summary: 'End a lease now: a signed terminate to the provider; says what was paid.',
  usage: 'lease cancel LEASE_ID [--reason TEXT] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        reason: { type: 'string', default: 'RENTER_CANCEL' },
        'data-dir': { type: 'string' }
      },
      allowPositionals: true,
      strict: true
    })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    try {
      const { store, record, identity } = await openLease(dataDir, positionals[0] ?? '', ctx)
      await withRenterNode(identity, async (node) => {
        await cancelJob({ node, wallet: identity.wallet, terms: record.terms, marketDomain: marketDomain(record.terms.chainId), signal: ctx.signal, reason: values.reason })
      })
      record.state = 'cancelled'
      record.reason = values.reason
      record.updatedAt = Date.now()
      await store.save(record)
      ctx.stdout(`cancelled lease ${record.leaseId}; paid ${formatAmount(record.paid, record.tokenDecimals)} (newest voucher ${record.voucherSequence}).\n`)
      return EXIT.OK
    } catch (err) {
      throw renterCliError(err)
    }
  }
}
