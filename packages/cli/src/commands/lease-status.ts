import { parseArgs } from 'node:util'
import { formatAmount, jsonReplacer, marketDomain, settlementDomain } from '@gpumesh/protocol'
import { FINAL_RECORD_STATES, attachJob, attachStartedAt, recordFollower, type JobOutcome, type LeaseRecord } from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { EXIT } from '../errors.js'
import { formatDuration, leaseStore, renterCliError, renterIdentity, renterNode, saveAttachResult } from './lease-common.js'
import type { Command } from '../context.js'

/** How long `lease status` listens to the provider for a lease that is not over. */
const DEFAULT_WAIT_SEC = 3

export const leaseStatusCommand: Command = {
  name: 'lease status',
  summary: 'Show a lease from the local record and, while it runs, the provider\'s view; no id lists every lease.',
  usage: 'lease status [LEASE_ID] [--wait SEC] [--local] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        wait: { type: 'string', default: String(DEFAULT_WAIT_SEC) },
        local: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      allowPositionals: true,
      strict: true
    })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const store = leaseStore(dataDir)
    try {
      if (positionals.length === 0) {
        const records = await store.list()
        if (values.json) {
          ctx.stdout(JSON.stringify(records, jsonReplacer, 2) + '\n')
        } else if (records.length === 0) {
          ctx.stdout(`No leases recorded in ${store.dir}.\n`)
        } else {
          for (const r of records) ctx.stdout(`${r.leaseId}  ${r.state.padEnd(13)}  ${r.terms.gpus.length} × ${r.terms.gpuClass}  paid ${formatAmount(r.paid, r.tokenDecimals)}  ${new Date(r.createdAt).toISOString()}\n`)
        }
        return EXIT.OK
      }
      let record = await store.load(positionals[0] ?? '')
      let remote: { state: string, detail: string } | null = null
      // A provider that went away mid-job may be back (a daemon restart re-attaches to jobs): ask it too.
      if (!values.local && (!FINAL_RECORD_STATES.has(record.state) || record.state === 'provider-gone')) {
        const view = await providerView(record, Number(values.wait) * 1000, dataDir, ctx)
        remote = view.remote
        // Attaching pays reports as a submit would, and may see the end: the record keeps up.
        record = await saveAttachResult(store, record, view.outcome)
      }
      if (values.json) {
        ctx.stdout(JSON.stringify({ ...record, provider: remote }, jsonReplacer, 2) + '\n')
      } else {
        ctx.stdout(describe(record) + (remote != null ? `provider   ${remote.state}${remote.detail !== '' ? ` — ${remote.detail}` : ''}\n` : ''))
      }
      return EXIT.OK
    } catch (err) {
      throw renterCliError(err)
    }
  }
}

export function describe (r: LeaseRecord): string {
  const d = r.tokenDecimals
  return [
    `lease      ${r.leaseId}`,
    `state      ${r.state}${r.exitCode != null ? ` (exit code ${r.exitCode})` : ''}${r.reason != null ? ` — ${r.reason}` : ''}`,
    `provider   ${r.terms.provider} (peer ${r.providerPeerId})`,
    `addresses  ${r.providerAddresses.join(' ')}`,
    `GPUs       ${r.terms.gpus.length} × ${r.terms.gpuClass} at ${formatAmount(r.terms.pricePerGpuHour, d)}/GPU-hour, up to ${r.terms.durationSec} s`,
    `billed     ${formatDuration(r.billedMs)}, ${(Number(r.gpuMilliseconds) / 1000).toFixed(1)} GPU-seconds`,
    `paid       ${formatAmount(r.paid, d)} of a ${formatAmount(r.budget, d)} budget (voucher ${r.voucherSequence})`,
    `events     up to ${r.lastSequence}`,
    r.lastCheckpoint != null ? `checkpoint ${r.lastCheckpoint}` : null,
    r.artifactsDir != null ? `artifacts  ${r.artifactsDir}` : null,
    `updated    ${new Date(r.updatedAt).toISOString()}`
  ].filter((l) => l != null).join('\n') + '\n'
}

/** Attaches for a moment from the last event seen, to learn what the provider says now. */
async function providerView (record: LeaseRecord, waitMs: number, dataDir: string, ctx: Parameters<Command['run']>[1]): Promise<{ remote: { state: string, detail: string }, outcome: JobOutcome | null }> {
  const identity = await renterIdentity(dataDir, ctx)
  const node = await renterNode(identity)
  const controller = new AbortController()
  const stopAll = (): void => { controller.abort() }
  ctx.signal.addEventListener('abort', stopAll, { once: true })
  const timer = setTimeout(stopAll, Math.max(500, waitMs))
  let events = 0
  let last = ''
  const follow = recordFollower(record)
  try {
    const outcome = await attachJob({
      node,
      wallet: identity.wallet,
      terms: record.terms,
      settlementDomain: settlementDomain(record.terms),
      marketDomain: marketDomain(record.terms.chainId),
      budget: record.budget,
      signal: controller.signal,
      fromSequence: record.lastSequence,
      startedAt: attachStartedAt(record),
      onEvent: (e) => { events++; last = e.kind; follow.onEvent(e) },
      onVoucher: follow.onVoucher
    })
    return { remote: { state: outcome.state, detail: `${outcome.exitCode != null ? `exit code ${outcome.exitCode}, ` : ''}paid ${formatAmount(outcome.paid, record.tokenDecimals)}` }, outcome }
  } catch (err) {
    if (controller.signal.aborted) return { remote: { state: 'reachable, job running', detail: `${events} new event${events === 1 ? '' : 's'}${last !== '' ? `, last ${last}` : ''}` }, outcome: null }
    return { remote: { state: 'unreachable or refused', detail: (err as Error).message }, outcome: null }
  } finally {
    clearTimeout(timer)
    ctx.signal.removeEventListener('abort', stopAll)
    await node.stop()
  }
}
