import { formatAmount, jsonReplacer } from '@gpumesh/protocol'
import { previewOrder, type OrderPreview, type PreviewMismatch } from '@gpumesh/renter'
import { CliError, EXIT } from '../errors.js'
import { localMatcher, readWholeBook } from './lease-common.js'
import { readLeaseJob } from './lease-job-file.js'
import type { CommandContext } from '../context.js'

/**
 * `gpumesh lease submit --dry-run JOB.yaml`: what the job's order would match in a matcher's book now
 * and the most it would cost, without unlocking keys, building the bundle, signing or sending an
 * order. The matcher's book is read like `gpumesh offers` does (signatures checked) and the order is
 * previewed by the renter SDK with the matcher's checks.
 */

/** A matcher proposes to this many providers before answering no-match (its default `maxProposals`). */
const SHOWN = 3

const MISMATCH_WORDS: Record<PreviewMismatch, string> = {
  EXPIRED: 'expired',
  TOKEN: 'another token or chain',
  SIMULATED: 'simulated GPUs',
  CLASS: 'another class',
  MEMORY: 'too little memory',
  COMPUTE_CAPABILITY: 'compute capability too low',
  REGION: 'another region',
  OPERATOR: 'another fleet operator',
  TOO_FEW_GPUS: 'too few free GPUs',
  DURATION: 'lease length not allowed',
  PRICE: 'above your price'
}

export interface DryRunOptions {
  /** The job file's absolute path, and how the person typed it. */
  jobPath: string
  jobArg: string
  dataDir: string
  matcher: string[] | null
  provider: string[] | null
  budget: string | null
  json: boolean
}

export async function leaseDryRun (ctx: CommandContext, o: DryRunOptions): Promise<number> {
  if (o.provider != null) throw new CliError('BAD_OPTION', '--dry-run reads a matcher\'s book; a provider has none. Give --matcher (or none, for the matcher running here).', { exitCode: EXIT.USAGE })
  const { job, decimals, budget } = await readLeaseJob(o.jobPath, o.jobArg, o.budget)
  const matcher = o.matcher ?? await localMatcher(o.dataDir)
  if (matcher == null) throw new CliError('NO_MATCHER', `No matcher given and none found in ${o.dataDir}. Pass --matcher /ip4/…/tcp/…/p2p/….`, { exitCode: EXIT.USAGE })
  const read = await readWholeBook(ctx, matcher, { includeSimulated: job.requirements.allowSimulated })
  const preview = previewOrder(job, read.offers, Date.now(), budget)
  const amount = (a: bigint): string => formatAmount(a, decimals)
  if (o.json) {
    ctx.stdout(JSON.stringify({
      dryRun: true,
      matcher,
      offersRead: read.offers.length,
      invalidOffers: read.invalid,
      candidates: preview.candidates,
      mismatches: preview.mismatches,
      gpuMilliseconds: preview.gpuMilliseconds,
      mostAtMatch: preview.mostAtMatch,
      mostAtMatchTokens: preview.mostAtMatch == null ? null : formatAmount(preview.mostAtMatch, decimals, decimals),
      mostAtCap: preview.mostAtCap,
      mostAtCapTokens: formatAmount(preview.mostAtCap, decimals, decimals),
      budget,
      budgetTokens: formatAmount(budget, decimals, decimals)
    }, jsonReplacer, 2) + '\n')
  } else {
    ctx.stdout(render(preview, { job: { gpus: job.requirements.gpuCount, classes: job.requirements.classes, cap: amount(job.maxPricePerGpuHour), durationSec: job.durationSec }, offers: read.offers.length, amount }))
  }
  if (read.invalid > 0) ctx.stderr(`gpumesh: left out ${read.invalid} offer${read.invalid === 1 ? '' : 's'} whose signature did not verify.\n`)
  return preview.candidates.length > 0 ? EXIT.OK : EXIT.FAILURE
}

function render (p: OrderPreview, c: { job: { gpus: number, classes: string[], cap: string, durationSec: number }, offers: number, amount: (a: bigint) => string }): string {
  const lines = ['Dry run: nothing was signed, ordered or paid.']
  lines.push(`Order: ${c.job.gpus} GPU${c.job.gpus === 1 ? '' : 's'} of ${c.job.classes.length === 0 ? 'any class' : c.job.classes.join(' or ')} for ${c.job.durationSec} s, at most ${c.job.cap}/GPU-hour.`)
  const misses = Object.entries(p.mismatches).map(([code, n]) => `${n} ${MISMATCH_WORDS[code as PreviewMismatch]}`)
  lines.push(`Book: ${c.offers} offer${c.offers === 1 ? '' : 's'}, ${p.candidates.length} fit${misses.length > 0 ? `; the rest: ${misses.join(', ')}` : ''}.`)
  if (p.candidates.length === 0) {
    lines.push('It would match nothing now: the order would be answered no-match and nothing paid.')
  } else {
    lines.push(`Would be proposed to, in this order (a matcher may reorder equal prices by its record of each provider):`)
    p.candidates.slice(0, SHOWN).forEach((x, i) => {
      lines.push(`  ${i + 1}. provider …${x.peerId.slice(-10)}  ${x.gpuClass}  ${c.amount(x.pricePerGpuHour)}/GPU-hour  ${x.countFree} free${x.region != null ? `  ${x.region}` : ''}`)
    })
    if (p.candidates.length > SHOWN) lines.push(`  (${p.candidates.length - SHOWN} more would be tried only if these declined)`)
  }
  const gpuHours = Number(p.gpuMilliseconds) / 3_600_000
  if (p.mostAtMatch != null) lines.push(`Most it would cost at ${c.amount(p.candidates[0]?.pricePerGpuHour ?? 0n)}/GPU-hour: ${c.amount(p.mostAtMatch)} (${gpuHours} GPU-hours, budget included).`)
  lines.push(`Most it could cost at all: ${c.amount(p.mostAtCap)} (your price cap for the whole lease, or the budget ${c.amount(p.budget)} if lower).`)
  return lines.join('\n') + '\n'
}
