import { existsSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Ledger, type UnsettledVoucher } from '@gpumesh/ledger'
import { LEDGER_FILE, privateKeyHex, runOnchainSettlement, settlementEscrow, type ProviderConfig } from '@gpumesh/provider'
import {
  decodeVoucher, formatAmount, jsonReplacer, validateLeaseTerms, validatePaymentSignature, validateSignedUsageReport,
  type Address
} from '@gpumesh/protocol'
import { EscrowClient, buildSettlementBatch, verifySettlementBatch, type BatchEntryInput, type SettleProgress, type SettleReport } from '@gpumesh/settlement'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { loadIdentity } from '../identity.js'
import { obtainPassword } from '../prompt.js'
import { renderTable } from '../table.js'
import { amountOption } from '../chain.js'
import { loadProviderConfig } from './provider-config.js'
import type { Command } from '../context.js'

/** A batch file larger than this is not read (a million entries is far below it). */
const MAX_BATCH_FILE_BYTES = 256 * 1024 * 1024

const usage = (message: string): CliError => new CliError('BAD_OPTION', message, { exitCode: EXIT.USAGE })

/** `--since`: an ISO 8601 date, or a span back from now (`30d`, `12h`, `90m`). */
export function parseSince (text: string | undefined, now = Date.now()): number | undefined {
  if (text == null) return undefined
  const span = /^(\d+)([dhm])$/.exec(text)
  if (span != null) return now - Number(span[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[span[2] as 'd' | 'h' | 'm']
  const at = Date.parse(text)
  if (Number.isNaN(at)) throw usage(`--since: "${text}" is neither a date (2026-11-01, 2026-11-01T12:00:00Z) nor a span back from now (30d, 12h, 90m).`)
  return at
}

/** The provider's ledger, opened beside a running daemon if there is one (WAL makes that safe). */
function openProviderLedger (dataDir: string): Ledger {
  const path = join(dataDir, LEDGER_FILE)
  if (!existsSync(path)) throw new CliError('NO_LEDGER', `No ledger in ${dataDir}: the provider has not run there yet.`)
  const ledger = new Ledger(path)
  ledger.open()
  return ledger
}

export const settleOnchainCommand: Command = {
  name: 'settle onchain',
  summary: 'Redeem the newest unredeemed voucher of every lease at the escrow, in batches; a crash never pays twice.',
  usage: 'settle onchain [--dry-run] [--min-amount AMOUNT] [--batch-size N] [--json] [--config FILE] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        'dry-run': { type: 'boolean', default: false },
        'min-amount': { type: 'string' },
        'batch-size': { type: 'string', default: '50' },
        json: { type: 'boolean', default: false },
        config: { type: 'string' },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const config = await loadProviderConfig(ctx, { config: values.config, dataDir: values['data-dir'] })
    const { rpcUrl } = config.settlement
    if (config.settlement.mode !== 'onchain' || rpcUrl == null) {
      throw new CliError('NOT_ONCHAIN', 'This provider settles off-chain (settlement.mode: offchain): export its vouchers with "gpumesh settle export" instead, or set settlement.mode onchain with settlement.rpcUrl and settlement.escrowAddress.', { exitCode: EXIT.USAGE })
    }
    const decimals = config.pricing.tokenDecimals
    const batchSize = Number(values['batch-size'])
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 200) throw usage('--batch-size must be a whole number from 1 to 200.')
    const minAmount = values['min-amount'] == null ? undefined : amountOption(values['min-amount'], decimals, '--min-amount')
    const password = await obtainPassword(ctx, { confirm: false, allowEmpty: true })
    const identity = await loadIdentity(config.dataDir, password)
    const ledger = openProviderLedger(config.dataDir)
    const client = new EscrowClient({ rpcUrl, escrow: settlementEscrow(config), privateKey: privateKeyHex(identity.wallet) })
    try {
      const report = await runOnchainSettlement(config.dataDir, {
        ledger,
        client,
        dryRun: values['dry-run'],
        batchSize,
        signal: ctx.signal,
        ...(minAmount != null ? { minAmount } : {}),
        onProgress: (event) => { if (!values.json) ctx.stderr(progressLine(event, decimals) + '\n') }
      })
      ctx.stdout(values.json ? JSON.stringify(report, jsonReplacer) + '\n' : describeReport(report, decimals))
      return report.batches.some((b) => b.state === 'failed') ? EXIT.FAILURE : EXIT.OK
    } finally {
      client.close()
      ledger.close()
    }
  }
}

function progressLine (event: SettleProgress, decimals: number): string {
  switch (event.type) {
    case 'reconciled': return `batch ${event.settlementId} left by an earlier run: ${event.state}${event.txHash != null ? ` (${event.txHash})` : ''}`
    case 'batch-recorded': return `batch ${event.settlementId}: ${event.leases} voucher(s) recorded, signing`
    case 'batch-signed': return `batch ${event.settlementId}: transaction ${event.txHash} signed`
    case 'batch-broadcast': return `batch ${event.settlementId}: sent, waiting for it to be mined`
    case 'batch-confirmed': return `batch ${event.settlementId}: confirmed, ${formatAmount(event.paid, decimals)} paid`
    case 'retry': return `the chain did not answer (${event.error.message}); trying again in ${event.delayMs} ms (attempt ${event.attempt + 1})`
  }
}

function describeReport (report: SettleReport, decimals: number): string {
  const money = (v: bigint): string => formatAmount(v, decimals)
  const lines: string[] = []
  for (const r of report.reconciled) {
    lines.push(`Reconciled batch ${r.settlementId} from an earlier run: ${r.state}${r.txHash != null ? `, transaction ${r.txHash}` : ''}, ${money(r.paid)} paid.`)
  }
  if (report.batches.length === 0) {
    lines.push(report.dryRun ? 'Nothing would be redeemed: every voucher is already paid (or below --min-amount).' : 'Nothing to redeem: every voucher is already paid (or below --min-amount).')
  }
  for (const b of report.batches) {
    const head = b.state === 'dry-run'
      ? `Would send ${b.entries.length} voucher(s), paying ${money(b.paid)}:`
      : `Batch ${b.settlementId ?? ''} ${b.state}: transaction ${b.txHash ?? '-'}${b.blockNumber != null ? ` in block ${b.blockNumber}` : ''}, ${money(b.paid)} paid for ${b.entries.length} voucher(s)${b.gasUsed != null ? `, ${b.gasUsed} gas` : ''}.`
    lines.push(head)
    lines.push(renderTable(['LEASE', 'RENTER', 'VOUCHER', 'PAID BEFORE', 'PAID NOW', 'RESULT'], b.entries.map((e) => [
      e.leaseId.slice(0, 18) + '…', e.renter, money(e.cumulativeAmount), money(e.paidBefore), money(e.paid), e.code
    ])))
  }
  for (const s of report.skipped) lines.push(`Skipped lease ${s.leaseId}: ${s.reason} (${s.code}).`)
  lines.push(`${report.dryRun ? 'Would pay' : 'Paid'} ${money(report.totals.paid)} in all through escrow ${report.escrow} on chain ${report.chainId}.`)
  return lines.join('\n') + '\n'
}

export const settleExportCommand: Command = {
  name: 'settle export',
  summary: 'Write the newest unexported voucher of every off-chain lease to a batch file anyone can verify, and mark them exported.',
  usage: 'settle export [--out FILE] [--since DATE|30d] [--batch ID] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        since: { type: 'string' },
        batch: { type: 'string' },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const since = parseSince(values.since)
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const ledger = openProviderLedger(dataDir)
    try {
      let id: number
      let text: string
      let summary: { entries: number, totals: unknown }
      if (values.batch != null) {
        // A batch recorded before whose file was lost: written again, exactly as recorded.
        const record = /^\d+$/.test(values.batch) ? ledger.settlementBatch(Number(values.batch)) : null
        if (record == null || record.kind !== 'offchain' || record.batch == null) throw usage(`--batch: ${values.batch} is not an off-chain batch of this ledger ("gpumesh earnings" counts them).`)
        id = record.id
        text = record.batch
        const parsed = JSON.parse(text) as { entries: unknown[], totals: unknown }
        summary = { entries: parsed.entries.length, totals: parsed.totals }
      } else {
        const unsettled = ledger.unsettledVouchers({ kind: 'offchain', ...(since != null ? { since } : {}) })
        if (unsettled.length === 0) {
          ctx.stdout(values.json ? JSON.stringify({ settlementId: null, entries: 0 }) + '\n' : 'Nothing to export: every off-chain voucher is already in a batch.\n')
          return EXIT.OK
        }
        const provider = unsettled[0]?.lease.provider as Address
        const batch = buildSettlementBatch({ provider, createdAt: Date.now(), entries: unsettled.map((u) => batchEntry(ledger, u)) })
        text = JSON.stringify(batch, null, 2) + '\n'
        // Recorded first: a crash before the file is written loses nothing (--batch writes it again),
        // while a file written first and not recorded would be exported twice.
        const record = ledger.recordOffchainExport(unsettled.map((u) => ({
          leaseId: u.lease.leaseId, sequence: u.voucher.sequence, cumulativeAmount: u.voucher.cumulativeAmount
        })), text)
        id = record.id
        summary = { entries: batch.entries.length, totals: batch.totals }
      }
      const out = values.out ?? `gpumesh-settlement-${id}.json`
      const path = isAbsolute(out) ? out : resolve(ctx.cwd, out)
      try {
        await writeFile(path, text, { mode: 0o644 })
      } catch (err) {
        throw new CliError('EXPORT_WRITE_FAILED', `The batch is recorded as settlement ${id} in the ledger, but ${path} could not be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Write it elsewhere with "gpumesh settle export --batch ${id} --out FILE".`, { cause: err })
      }
      ctx.stdout(values.json
        ? JSON.stringify({ settlementId: id, file: path, ...summary }, jsonReplacer) + '\n'
        : `Exported ${summary.entries} voucher(s) as settlement ${id} to ${path}. Anyone can check it with "gpumesh settle verify ${out}" or any EIP-712 library.\n`)
      return EXIT.OK
    } finally {
      ledger.close()
    }
  }
}

/** One lease of an off-chain batch, from what the ledger stored when the voucher was accepted. */
function batchEntry (ledger: Ledger, u: UnsettledVoucher): BatchEntryInput {
  const voucher = decodeVoucher(new TextEncoder().encode(u.voucher.body))
  if (u.lease.terms == null) throw new CliError('LEDGER_DAMAGED', `Lease ${u.lease.leaseId} has no signed terms in the ledger; it cannot be exported.`)
  const stored = JSON.parse(u.lease.terms) as { terms: unknown, signature: unknown }
  const terms = { terms: validateLeaseTerms(stored.terms), signature: validatePaymentSignature(stored.signature) }
  const period = ledger.lastUsagePeriod(u.lease.leaseId)
  const view = ledger.leaseSettlement(u.lease.leaseId)
  let previous: BatchEntryInput['previous'] = null
  if (view != null && view.exported > 0n && view.lastSettlementId != null) {
    const entry = ledger.settlementBatch(view.lastSettlementId)?.entries.find((e) => e.leaseId.toLowerCase() === u.lease.leaseId.toLowerCase())
    if (entry != null) previous = { sequence: entry.sequence, cumulativeAmount: view.exported }
  }
  return { voucher, terms, usage: period == null ? null : validateSignedUsageReport(JSON.parse(period.report)), previous }
}

export const settleVerifyCommand: Command = {
  name: 'settle verify',
  summary: 'Check an off-chain settlement batch entry by entry (signatures, domains, terms, amounts); exit 1 naming each bad entry.',
  usage: 'settle verify FILE [--json]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } }, strict: true, allowPositionals: true })
    const file = positionals[0]
    if (file == null) throw usage('Name the batch file: gpumesh settle verify FILE.')
    const path = isAbsolute(file) ? file : resolve(ctx.cwd, file)
    const size = await stat(path).then((s) => s.size, (err: NodeJS.ErrnoException) => {
      throw new CliError('NO_FILE', `Cannot read ${path} (${err.code ?? err.message}).`, { cause: err })
    })
    if (size > MAX_BATCH_FILE_BYTES) throw new CliError('TOO_LARGE', `${path} is ${size} bytes, more than a batch file can be (${MAX_BATCH_FILE_BYTES}).`)
    let parsed: unknown
    try {
      parsed = JSON.parse(await readFile(path, 'utf8'))
    } catch (err) {
      throw new CliError('BAD_BATCH', `${path} is not JSON (${(err as Error).message}); a batch is the JSON file "gpumesh settle export" writes.`, { cause: err })
    }
    const result = verifySettlementBatch(parsed)
    if (values.json) {
      ctx.stdout(JSON.stringify(result, jsonReplacer) + '\n')
    } else {
      const lines = [
        ...result.problems.map((p) => `batch: ${p}`),
        ...result.entries.filter((e) => !e.ok).map((e) => `entry ${e.index}${e.leaseId != null ? ` (lease ${e.leaseId})` : ''}: ${e.problems.join('; ')}`),
        `${result.entries.filter((e) => e.ok).length} of ${result.entries.length} entries verify.`,
        ...result.totals.map((t) => `  chain ${t.chainId}, token ${t.token}: ${t.amountDue} base units due over ${t.entries} lease(s)`)
      ]
      ;(result.ok ? ctx.stdout : ctx.stderr)(lines.join('\n') + '\n')
    }
    return result.ok ? EXIT.OK : EXIT.FAILURE
  }
}

export const earningsCommand: Command = {
  name: 'earnings',
  summary: 'What this provider earned per token: accrued, covered by vouchers, exported, redeemed, outstanding, and who owes it.',
  usage: 'earnings [--since DATE|30d] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: { since: { type: 'string' }, json: { type: 'boolean', default: false }, 'data-dir': { type: 'string' } },
      strict: true
    })
    const since = parseSince(values.since)
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const ledger = openProviderLedger(dataDir)
    let earnings
    try {
      earnings = ledger.earnings(since != null ? { since } : {})
    } finally {
      ledger.close()
    }
    if (values.json) {
      ctx.stdout(JSON.stringify({ since: since ?? null, earnings }, jsonReplacer) + '\n')
      return EXIT.OK
    }
    const decimals = await loadProviderConfig(ctx, { dataDir: values['data-dir'] }).then((c: ProviderConfig) => c.pricing.tokenDecimals, () => null)
    ctx.stdout(describeEarnings(earnings, decimals))
    return EXIT.OK
  }
}

/** The earnings table (also in `provider status`). Amounts in token units, or base units without decimals. */
export function describeEarnings (earnings: ReturnType<Ledger['earnings']>, decimals: number | null): string {
  if (earnings.length === 0) return 'No earnings yet: no lease has been metered.\n'
  const money = (v: bigint): string => decimals == null ? v.toString() : formatAmount(v, decimals)
  const rows = earnings.map((t) => [
    `${t.token.slice(0, 10)}… (chain ${t.chainId})`, String(t.leases), money(t.accrued), money(t.vouchered), money(t.exported), money(t.redeemed), money(t.outstanding)
  ])
  const lines = [renderTable(['TOKEN', 'LEASES', 'ACCRUED', 'VOUCHERED', 'EXPORTED', 'REDEEMED', 'OUTSTANDING'], rows)]
  for (const t of earnings) {
    for (const r of t.renters.slice(0, 10)) lines.push(`  ${r.renter} owes ${money(r.outstanding)}${r.unvouchered > 0n ? ` (${money(r.unvouchered)} not yet covered by a voucher)` : ''}`)
    if (t.renters.length > 10) lines.push(`  … and ${t.renters.length - 10} more renters`)
  }
  if (decimals == null) lines.push('(amounts in base units: the config could not be read for the token\'s decimals)')
  return lines.join('\n') + '\n'
}
