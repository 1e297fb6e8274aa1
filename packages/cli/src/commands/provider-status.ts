import { parseArgs } from 'node:util'
import { readProviderFile, type ProviderStatus } from '@gpumesh/provider'
import { formatAmount } from '@gpumesh/protocol'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { describeEarnings } from './settle.js'
import type { Command } from '../context.js'

/** ProviderStatus as it arrives in JSON: bigints are decimal strings. */
type StatusJson = Omit<ProviderStatus, 'offer' | 'activeLeases' | 'earnings' | 'settlement'> & {
  settlement: { mode: string, escrow: string, chainId: string, lastRedemption: { txHashes: string[], paid: string, vouchers: number } | null }
  earnings: Array<Record<string, unknown> & { renters: Array<Record<string, unknown>> }>
  offer: Omit<ProviderStatus['offer'], 'gpus'> & { gpus: Array<{ class: string, countFree: number, countTotal: number, pricePerGpuHour: string, simulated: boolean }> }
  activeLeases: Array<Omit<ProviderStatus['activeLeases'][number], 'pricePerGpuHour'> & { pricePerGpuHour: string }>
}

export const providerStatusCommand: Command = {
  name: 'provider status',
  summary: 'Show the running daemon: peer id, addresses, peers, GPUs, current offer, active leases, last errors.',
  usage: 'provider status [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean', default: false }, 'data-dir': { type: 'string' } },
      strict: true
    })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const info = await readProviderFile(dataDir)
    const notRunning = `The provider daemon is not running (data directory ${dataDir}). Start it with "gpumesh provider start".`
    if (info == null) throw new CliError('NOT_RUNNING', notRunning)
    if (info.api == null) throw new CliError('NO_API', `The provider daemon (pid ${info.pid}) runs with api.enabled false, so its status cannot be read.`)
    let body: string
    try {
      const res = await fetch(`${info.api.url}/status`, { headers: { authorization: `Bearer ${info.api.token}` }, signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(5_000)]) })
      body = await res.text()
      if (!res.ok) throw new CliError('API_ERROR', `The provider API answered ${res.status}: ${body}`)
    } catch (err) {
      if (err instanceof CliError) throw err
      throw new CliError('NOT_RUNNING', `${notRunning} (provider.json is left from pid ${info.pid}, whose API at ${info.api.url} does not answer.)`, { cause: err })
    }
    if (values.json) {
      ctx.stdout(body.endsWith('\n') ? body : body + '\n')
      return EXIT.OK
    }
    ctx.stdout(render(JSON.parse(body) as StatusJson, `${info.api.url}/?token=${info.api.token}`))
    return EXIT.OK
  }
}

/** Money fields of an earnings row back to bigints (JSON carries them as decimal strings). */
function bigints (row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(row)) {
    out[key] = Array.isArray(value)
      ? value.map((v) => bigints(v as Record<string, unknown>))
      : typeof value === 'string' && /^\d+$/.test(value) && key !== 'token' && key !== 'renter' ? BigInt(value) : value
  }
  return out
}

function render (s: StatusJson, dashboard: string): string {
  const lines = [
    `provider ${s.peerId ?? '?'} ${s.running ? 'running' : 'stopping'}`,
    `  payment address  ${s.paymentAddress}`,
    ...s.addresses.map((a) => `  listening        ${a}`),
    `  connected peers  ${s.connectedPeers.length}`,
    `  dashboard        ${dashboard}`,
    ...(s.fleet != null ? [`  fleet operator   ${s.fleet.operator} (membership until ${new Date(s.fleet.expiresAt).toISOString()})`] : []),
    '',
    'GPUs:'
  ]
  for (const g of s.gpus) {
    lines.push(`  ${g.uuid}  ${g.class}${g.simulated ? ' (simulated)' : ''}  ${g.state}${g.leaseId != null ? ` lease ${g.leaseId.slice(0, 10)}…` : ''}${g.problems.length > 0 ? `  ${g.problems.join('; ')}` : ''}`)
  }
  if (s.gpus.length === 0) lines.push('  none')
  lines.push('', 'Offer:')
  if (s.offer.sequence != null) {
    lines.push(`  sequence ${s.offer.sequence}, expires ${new Date(s.offer.expiresAt ?? 0).toISOString()}, ${s.offer.bytes ?? 0} bytes`)
    for (const g of s.offer.gpus) lines.push(`  ${g.class}${g.simulated ? ' (simulated)' : ''}: ${g.countFree}/${g.countTotal} free at ${formatAmount(BigInt(g.pricePerGpuHour), s.offer.tokenDecimals)} per GPU-hour`)
  }
  if (s.offer.reason != null) lines.push(`  not published: ${s.offer.reason}`)
  for (const note of s.offer.notes) lines.push(`  note: ${note}`)
  lines.push('', s.settlement.mode === 'onchain'
    ? `Settlement: on chain ${s.settlement.chainId} through escrow ${s.settlement.escrow}`
    : 'Settlement: off-chain (gpumesh settle export writes verifiable batches)')
  const last = s.settlement.lastRedemption
  if (last != null) lines.push(`  last redemption: ${formatAmount(BigInt(last.paid), s.offer.tokenDecimals)} for ${last.vouchers} voucher(s)${last.txHashes.length > 0 ? ` (${last.txHashes.join(', ')})` : ''}`)
  lines.push(...describeEarnings(s.earnings.map(bigints) as unknown as Parameters<typeof describeEarnings>[0], s.offer.tokenDecimals).trimEnd().split('\n').map((l) => `  ${l}`))
  lines.push('', `Active leases: ${s.activeLeases.length}`)
  for (const l of s.activeLeases) lines.push(`  ${l.leaseId}  ${l.state}  ${l.gpus.length} × ${l.gpuClass}  renter ${l.renter}`)
  const rejected = Object.entries(s.leaseStats.rejected).map(([code, n]) => `${code} ${n}`).join(', ')
  lines.push(`Proposals: ${s.leaseStats.accepted} accepted${rejected !== '' ? `; rejected: ${rejected}` : ''}`)
  lines.push(`Runner: ${s.runner.kind}${s.runner.engineVersion != null ? ` (docker engine ${s.runner.engineVersion})` : ''}`)
  for (const problem of s.runner.problems) lines.push(`  cannot run jobs: ${problem}`)
  if (s.recentErrors.length > 0 || s.probeErrors.length > 0) {
    lines.push('', 'Last errors:')
    for (const e of s.probeErrors) lines.push(`  probe ${e.source}: ${e.message}`)
    for (const e of s.recentErrors) lines.push(`  ${new Date(e.at).toISOString()}  ${e.message}`)
  }
  return lines.join('\n') + '\n'
}
