import { parseArgs } from 'node:util'
import { ZERO_ADDRESS, formatAmount, jsonReplacer } from '@gpumesh/protocol'
import { EscrowClient } from '@gpumesh/settlement'
import { FINAL_RECORD_STATES, type JobFollowResult, type LocalLeaseRecord } from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { EXIT } from '../errors.js'
import { renderTable } from '../table.js'
import { attachRecordedLease, formatDuration, leaseStore, renterCliError, renterIdentity, renterNode, saveAttachResult } from './lease-common.js'
import type { Command } from '../context.js'

/** How long `lease status` listens to the provider for a lease that is not over. */
const DEFAULT_WAIT_SEC = 3

export const leaseStatusCommand: Command = {
  name: 'lease status',
  summary: 'Show a lease from the local record and, while it runs, the provider\'s view; no id lists every lease.',
  usage: 'lease status [LEASE_ID] [--wait SEC] [--local] [--rpc URL] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        wait: { type: 'string', default: String(DEFAULT_WAIT_SEC) },
        local: { type: 'boolean', default: false },
        rpc: { type: 'string' },
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
          ctx.stdout(renderTable(['LEASE', 'STATE', 'GPUS', 'PAID', 'CREATED'], records.map((r) => [
            r.leaseId, r.state, `${r.terms.gpus.length} × ${r.terms.gpuClass}`, formatAmount(r.paid, r.tokenDecimals), new Date(r.createdAt).toISOString()
          ])) + '\n')
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
      const settlement = await settlementView(record, values.rpc ?? ctx.env.GPUMESH_RPC_URL)
      if (values.json) {
        ctx.stdout(JSON.stringify({ ...record, provider: remote, settlement }, jsonReplacer, 2) + '\n')
      } else {
        ctx.stdout(describe(record) + `settled    ${describeSettlement(settlement, record.tokenDecimals)}\n` +
          (remote != null ? `provider   ${remote.state}${remote.detail !== '' ? ` — ${remote.detail}` : ''}\n` : ''))
      }
      return EXIT.OK
    } catch (err) {
      throw renterCliError(err)
    }
  }
}

export function describe (r: LocalLeaseRecord): string {
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

/** How the lease is settled and, on chain when an RPC URL is known, what the escrow has paid for it. */
export interface LeaseSettlement {
  kind: 'offchain' | 'onchain'
  escrow: string
  /** What the vouchers the renter signed add up to: the lease's cost. */
  cost: bigint
  /** Paid at the escrow so far; null off-chain or when the chain was not asked. */
  redeemed: bigint | null
  /** Why the chain was not read, when it was not. */
  note: string | null
}

async function settlementView (record: LocalLeaseRecord, rpcUrl: string | undefined): Promise<LeaseSettlement> {
  const escrow = record.terms.escrow ?? ZERO_ADDRESS
  if (escrow === ZERO_ADDRESS) return { kind: 'offchain', escrow, cost: record.paid, redeemed: null, note: null }
  if (rpcUrl == null || rpcUrl === '') return { kind: 'onchain', escrow, cost: record.paid, redeemed: null, note: 'pass --rpc URL (or set GPUMESH_RPC_URL) to see what the escrow paid' }
  const client = new EscrowClient({ rpcUrl, escrow })
  try {
    const redeemed = await client.paid({ leaseId: record.terms.leaseId, provider: record.terms.provider, renter: record.terms.renter, token: record.terms.token })
    return { kind: 'onchain', escrow, cost: record.paid, redeemed, note: null }
  } catch (err) {
    return { kind: 'onchain', escrow, cost: record.paid, redeemed: null, note: `the chain could not be read: ${(err as Error).message}` }
  } finally {
    client.close()
  }
}

function describeSettlement (s: LeaseSettlement, decimals: number): string {
  const money = (v: bigint): string => formatAmount(v, decimals)
  if (s.kind === 'offchain') return `off-chain: vouchers for ${money(s.cost)}, settled by the provider's batch export`
  if (s.redeemed === null) return `on chain through escrow ${s.escrow}: vouchers for ${money(s.cost)} (${s.note ?? 'not read'})`
  const state = s.redeemed >= s.cost ? 'fully redeemed' : s.redeemed === 0n ? 'not yet redeemed' : `${money(s.cost - s.redeemed)} not yet redeemed`
  return `on chain through escrow ${s.escrow}: vouchers for ${money(s.cost)}, ${money(s.redeemed)} paid by the escrow (${state})`
}

/** Attaches for a moment from the last event seen, to learn what the provider says now. */
async function providerView (record: LocalLeaseRecord, waitMs: number, dataDir: string, ctx: Parameters<Command['run']>[1]): Promise<{ remote: { state: string, detail: string }, outcome: JobFollowResult | null }> {
  const identity = await renterIdentity(dataDir, ctx)
  const node = await renterNode(identity)
  const controller = new AbortController()
  const stopAll = (): void => { controller.abort() }
  ctx.signal.addEventListener('abort', stopAll, { once: true })
  const timer = setTimeout(stopAll, Math.max(500, waitMs))
  let events = 0
  let last = ''
  try {
    const outcome = await attachRecordedLease(node, identity, record, {
      signal: controller.signal,
      fromSequence: record.lastSequence,
      onEvent: (e) => { events++; last = e.kind }
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
