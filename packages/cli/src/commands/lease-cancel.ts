import { parseArgs } from 'node:util'
import { formatAmount, marketDomain } from '@gpumesh/protocol'
import { cancelJob } from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { EXIT } from '../errors.js'
import { leaseStore, renterCliError, renterIdentity, renterNode } from './lease-common.js'
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
      const store = leaseStore(dataDir)
      const record = await store.load(positionals[0] ?? '')
      const identity = await renterIdentity(dataDir, ctx)
      const node = await renterNode(identity)
      try {
        await cancelJob({ node, wallet: identity.wallet, terms: record.terms, marketDomain: marketDomain(record.terms.chainId), signal: ctx.signal, reason: values.reason })
      } finally {
        await node.stop()
      }
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
