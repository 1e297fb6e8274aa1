import { mkdir, mkdtemp, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { formatAmount, jsonReplacer, type JobEvent } from '@gpumesh/protocol'
import { describeFsError } from '@gpumesh/provider'
import { marketDomain } from '@gpumesh/protocol'
import {
  buildBundle, cancelJob, newLeaseRecord, placeOrder, proposeToProvider,
  readBundle, runLeasedJob, signJobOrder, type GrantedLease, type LocalLeaseRecord, type JobRunSummary
} from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { formatDuration, leaseStore, localMatcher, progressBar, renterCliError, renterIdentity, renterNode } from './lease-common.js'
import { leaseDryRun, type DryRunOptions } from './lease-dry-run.js'
import { readLeaseJob, type LeaseJob } from './lease-job-file.js'
import type { Command, CommandContext } from '../context.js'

/** Artifacts land in `<cwd>/gpumesh-out/<lease id>/` unless --out says otherwise. */
export const DEFAULT_OUT_DIR = 'gpumesh-out'

export const leaseSubmitCommand: Command = {
  name: 'lease submit',
  summary: 'Lease GPUs for a job file: order (matcher or provider), upload, stream logs, pay per interval, fetch artifacts.',
  usage: 'lease submit JOB.yaml [--matcher ADDR... | --provider ADDR...] [--budget AMOUNT] [--out DIR] [--reattach-sec N] [--dry-run] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        matcher: { type: 'string', multiple: true },
        provider: { type: 'string', multiple: true },
        budget: { type: 'string' },
        out: { type: 'string' },
        'reattach-sec': { type: 'string', default: '120' },
        json: { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      allowPositionals: true,
      strict: true
    })
    if (positionals.length !== 1) throw new CliError('BAD_OPTION', 'Give one job file: gpumesh lease submit job.yaml.', { exitCode: EXIT.USAGE })
    if (values.matcher != null && values.provider != null) throw new CliError('BAD_OPTION', 'Give --matcher or --provider, not both.', { exitCode: EXIT.USAGE })
    const reattachSec = Number(values['reattach-sec'])
    if (!Number.isInteger(reattachSec) || reattachSec < 0 || reattachSec > 86_400) throw new CliError('BAD_OPTION', `--reattach-sec must be a whole number of seconds from 0 to 86400, not "${values['reattach-sec']}".`, { exitCode: EXIT.USAGE })
    const jobPath = resolve(ctx.cwd, positionals[0] ?? '')
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    try {
      if (values['dry-run']) {
        return await leaseDryRun(ctx, { jobPath, jobArg: positionals[0] ?? '', dataDir, matcher: values.matcher ?? null, provider: values.provider ?? null, budget: values.budget ?? null, json: values.json })
      }
      return await submit(ctx, { jobPath, jobArg: positionals[0] ?? '', dataDir, matcher: values.matcher ?? null, provider: values.provider ?? null, budget: values.budget ?? null, out: values.out ?? null, reattachSec, json: values.json })
    } catch (err) {
      throw renterCliError(err)
    }
  }
}

interface SubmitOptions extends DryRunOptions {
  out: string | null
  reattachSec: number
}

async function submit (ctx: CommandContext, o: SubmitOptions): Promise<number> {
  const { job, decimals, budget } = await readLeaseJob(o.jobPath, o.jobArg, o.budget)
  const matcher = o.provider != null ? null : o.matcher ?? await localMatcher(o.dataDir)
  if (o.provider == null && matcher == null) {
    throw new CliError('NO_MATCHER', `No matcher given and none found in ${o.dataDir}. Pass --matcher /ip4/…/tcp/…/p2p/… or --provider ADDR.`, { exitCode: EXIT.USAGE })
  }
  if (budget <= 0n) {
    throw new CliError('BAD_OPTION', `The budget is ${formatAmount(budget, decimals)}: nothing could be paid. Give a budget in the job file or --budget.`, { exitCode: EXIT.USAGE })
  }
  // Everything that can be checked is checked before ordering: a lease taken and then abandoned holds
  // the provider's GPUs until its start deadline.
  const identity = await renterIdentity(o.dataDir, ctx)
  const store = leaseStore(o.dataDir)
  const outBase = resolve(ctx.cwd, o.out ?? DEFAULT_OUT_DIR)
  await checkWritable(store.dir, 'the lease records directory', '--data-dir or GPUMESH_HOME')
  await checkWritable(outBase, 'the output directory', '--out')
  const note = (line: string): void => { ctx.stderr(`gpumesh: ${line}\n`) }

  const scratch = await mkdtemp(join(tmpdir(), 'gpumesh-bundle-'))
  const node = await renterNode(identity)
  try {
    const bundle = await buildBundle({ baseDir: dirname(o.jobPath), files: job.files, destFile: join(scratch, 'bundle.tar.gz'), signal: ctx.signal })
    if (!o.json) note(`bundle: ${bundle.entries.length} entries, ${bundle.size} bytes, sha256 ${bundle.sha256.slice(2, 14)}…`)
    const order = signJobOrder({
      key: identity.wallet,
      renterPeerId: identity.peerId,
      requirements: job.requirements,
      maxPricePerGpuHour: job.maxPricePerGpuHour,
      durationSec: job.durationSec,
      token: job.token.address,
      chainId: job.token.chainId,
      jobHash: bundle.sha256,
      now: Date.now()
    })
    let lease: GrantedLease
    if (o.provider != null) {
      if (!o.json) note(`proposing to the provider directly at ${formatAmount(job.maxPricePerGpuHour, decimals)}/GPU-hour (your price cap)`)
      lease = await proposeToProvider({ node, provider: o.provider, order, signal: ctx.signal })
    } else {
      lease = await placeOrder({ node, matcher: matcher ?? [], order, signal: ctx.signal })
    }
    const { terms } = lease
    // From here on a failure before the job has started cancels the lease at once, freeing the GPUs.
    let record: LocalLeaseRecord | null = null
    try {
      return await runOnLease(ctx, o, { lease, node, identity, bundle, budget, decimals, store, note, spec: job.spec, setRecord: (r) => { record = r } })
    } catch (err) {
      const r = record as LocalLeaseRecord | null
      if (r == null || (r.startedAt == null && r.lastSequence === 0)) {
        try {
          await cancelJob({ node, wallet: identity.wallet, terms, marketDomain: marketDomain(terms.chainId), signal: AbortSignal.timeout(10_000), reason: 'RENTER_CANCEL' })
          note(`cancelled lease ${terms.leaseId} at once, so the provider frees its GPUs; nothing was paid`)
        } catch {
          // The provider already ended it (it refused the job), or cannot be reached: its start deadline frees the GPUs.
        }
      }
      throw err
    }
  } finally {
    await node.stop()
    await rm(scratch, { recursive: true, force: true })
  }
}

interface LeasedContext {
  lease: GrantedLease
  node: Awaited<ReturnType<typeof renterNode>>
  identity: Awaited<ReturnType<typeof renterIdentity>>
  bundle: { path: string }
  budget: bigint
  decimals: number
  store: ReturnType<typeof leaseStore>
  note: (line: string) => void
  setRecord: (record: LocalLeaseRecord) => void
  spec: LeaseJob['job']['spec']
}

async function runOnLease (ctx: CommandContext, o: SubmitOptions, c: LeasedContext): Promise<number> {
  const { lease, node, identity, bundle, budget, decimals, store, note } = c
  const { terms } = lease
  if (!o.json) {
    note(`leased ${terms.leaseId} from ${terms.provider} (peer …${lease.providerPeerId.slice(-10)}): ${terms.gpus.length} × ${terms.gpuClass} at ${formatAmount(terms.pricePerGpuHour, decimals)}/GPU-hour, budget ${formatAmount(budget, decimals)}`)
  }
  const record = newLeaseRecord(lease, { jobFile: o.jobPath, tokenDecimals: decimals, budget, now: Date.now() })
  c.setRecord(record)
  await store.save(record)
  const outDir = resolve(ctx.cwd, o.out ?? DEFAULT_OUT_DIR, terms.leaseId)
  const bar = !o.json && ctx.interactive ? progressBar(ctx, 'upload') : null
  const summary = await runLeasedJob({
    node,
    wallet: identity.wallet,
    lease,
    spec: c.spec,
    bundle: { data: readBundle(bundle.path, ctx.signal), size: (await stat(bundle.path)).size },
    budget,
    store,
    record,
    outDir,
    signal: ctx.signal,
    reattachForMs: o.reattachSec * 1000,
    onReattach: (a) => {
      bar?.done()
      note(`the provider stopped answering (${a.reason}); re-attaching in ${(a.waitMs / 1000).toFixed(1)} s (attempt ${a.attempt}, giving up in ${Math.ceil(a.leftMs / 1000)} s)`)
    },
    onEvent: (e) => { bar?.done(); printEvent(e, ctx, o.json) },
    ...(bar != null ? { onUploadProgress: bar.update } : {})
  })
  bar?.done()
  return report(summary, { ctx, json: o.json, decimals, budget })
}

/** Creates `dir` if needed and proves a file can be written in it, or says why not and what to do. */
async function checkWritable (dir: string, what: string, option: string): Promise<void> {
  const probe = join(dir, `.gpumesh-write-check-${process.pid}`)
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await writeFile(probe, '')
    await unlink(probe)
  } catch (err) {
    const sentence = await describeFsError(err, dir, what, option)
    throw new CliError('DIR_UNUSABLE', `${sentence ?? `Cannot write to ${what} ${dir}: ${(err as Error).message}.`} Nothing was leased or paid.`, { cause: err })
  }
}

/** Log lines go to stdout/stderr as the job wrote them (stderr only, with --json); notes to stderr. */
export function printEvent (e: JobEvent, ctx: CommandContext, json: boolean): void {
  switch (e.kind) {
    case 'log':
      if (e.stream === 'stderr' || json) ctx.stderr(`${e.text ?? ''}\n`)
      else ctx.stdout(`${e.text ?? ''}\n`)
      break
    case 'started':
      if (!json) ctx.stderr('gpumesh: job started\n')
      break
    case 'checkpoint':
      ctx.stderr(`gpumesh: checkpoint${e.text != null ? `: ${e.text}` : ''}\n`)
      break
    case 'terminated':
      ctx.stderr(`gpumesh: the provider terminated the job (${e.reason ?? 'no reason'})${e.text != null ? `: ${e.text}` : ''}\n`)
      break
    default:
      break
  }
}

function report (s: JobRunSummary, o: { ctx: CommandContext, json: boolean, decimals: number, budget: bigint }): number {
  const { ctx, decimals } = o
  if (o.json) {
    ctx.stdout(JSON.stringify({ ...s, paidFormatted: formatAmount(s.paid, decimals) }, jsonReplacer, 2) + '\n')
  } else {
    ctx.stdout([
      '',
      `lease      ${s.leaseId}`,
      `provider   ${s.provider} (peer ${s.providerPeerId})`,
      `GPUs       ${s.gpus.length} × ${s.gpuClass}`,
      `state      ${s.state}${s.exitCode != null ? ` (exit code ${s.exitCode})` : ''}${s.reason != null ? ` — ${s.reason}` : ''}`,
      `run time   ${formatDuration(s.runTimeMs)}`,
      `GPU time   ${s.gpuSeconds.toFixed(1)} GPU-seconds`,
      `paid       ${formatAmount(s.paid, decimals)} (budget ${formatAmount(o.budget, decimals)})`,
      s.artifactsDir != null
        ? `artifacts  ${s.artifactsDir} (${s.artifacts?.files ?? 0} file${s.artifacts?.files === 1 ? '' : 's'})`
        : `artifacts  none${s.artifactsError != null ? `: ${s.artifactsError}` : ''}`,
      s.lastCheckpoint != null ? `checkpoint ${s.lastCheckpoint}` : null
    ].filter((l) => l != null).join('\n') + '\n')
  }
  if (s.state === 'cancelled') {
    ctx.stderr(`gpumesh: cancelled lease ${s.leaseId}; paid ${formatAmount(s.paid, decimals)}.\n`)
    return 130
  }
  if (s.paymentStopped?.code === 'BUDGET_SPENT' || s.reason === 'UNPAID') {
    if (s.paymentStopped != null && s.paymentStopped.code !== 'BUDGET_SPENT') {
      throw new CliError('PAYMENT_STOPPED', `Stopped paying the provider: ${s.paymentStopped.message} (${s.paymentStopped.code}); it then stopped the job after ${formatAmount(s.paid, decimals)} was paid.`)
    }
    throw new CliError('BUDGET_SPENT', `The budget of ${formatAmount(o.budget, decimals)} is spent: the provider stopped the job after ${formatAmount(s.paid, decimals)} was paid${s.lastCheckpoint != null ? `; last checkpoint: ${s.lastCheckpoint}` : ''}. Raise --budget or the job file's budget to run longer.`)
  }
  if (s.reason === 'INSUFFICIENT_ESCROW') {
    throw new CliError('INSUFFICIENT_ESCROW', `Your escrow no longer covered the next billing interval: the provider stopped the job after ${formatAmount(s.paid, decimals)} was paid${s.lastCheckpoint != null ? `; last checkpoint: ${s.lastCheckpoint}` : ''}. Deposit more ("gpumesh escrow deposit AMOUNT") and submit again.`)
  }
  if (s.state !== 'completed' || (s.exitCode ?? 0) !== 0) {
    ctx.stderr(`gpumesh: the job ended ${s.state}${s.exitCode != null ? ` with exit code ${s.exitCode}` : ''}${s.reason != null ? ` (${s.reason})` : ''}.\n`)
    return EXIT.FAILURE
  }
  return EXIT.OK
}
