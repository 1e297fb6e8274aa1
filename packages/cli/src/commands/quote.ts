import { readFile, readdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ZERO_ADDRESS, formatAmount, type Address } from '@gpumesh/protocol'
import { loadGpuClasses } from '@gpumesh/provider'
import {
  DEFAULT_MFU, buildQuote, chinchillaTokens, newestReferencePriceFile, parseCount, parseReferencePrices,
  trainingFlops, type ClassQuote, type OfferedCapacity, type Quote, type QuoteMarket, type ReferencePriceFile
} from '@gpumesh/renter'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { localMatcher, readWholeBook } from './lease-common.js'
import { renderTable } from '../table.js'
import type { Command } from '../context.js'

/** `config/` of the repository, found from this module in both src/commands and dist/commands. */
export const CONFIG_DIR = fileURLToPath(new URL('../../../../config/', import.meta.url))


export const quoteCommand: Command = {
  name: 'quote',
  summary: 'What a training run would cost on the GPUs offered now: GPU-hours, wall-clock time, price and memory per class.',
  usage: 'quote (--flops F | --params N (--tokens D | --chinchilla) [--active-params A]) [--mfu U] [--classes C,C] [--gpus N | --deadline HOURS] ' +
    '[--checkpoint-minutes M] [--interruptions-per-day R] [--matcher ADDR… | --offline [--prices FILE]] [--include-simulated] [--token ADDR] [--decimals D] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        flops: { type: 'string' },
        params: { type: 'string' },
        'active-params': { type: 'string' },
        tokens: { type: 'string' },
        chinchilla: { type: 'boolean', default: false },
        mfu: { type: 'string' },
        classes: { type: 'string' },
        gpus: { type: 'string' },
        deadline: { type: 'string' },
        'checkpoint-minutes': { type: 'string' },
        'interruptions-per-day': { type: 'string' },
        matcher: { type: 'string', multiple: true },
        offline: { type: 'boolean', default: false },
        prices: { type: 'string' },
        'include-simulated': { type: 'boolean', default: false },
        token: { type: 'string' },
        decimals: { type: 'string' },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const usage = (message: string): CliError => new CliError('BAD_OPTION', message, { exitCode: EXIT.USAGE })
    const count = (flag: string): number | null => {
      const text = values[flag as keyof typeof values]
      if (typeof text !== 'string') return null
      try {
        return parseCount(text)
      } catch (err) {
        throw usage(`--${flag}: ${(err as Error).message}.`)
      }
    }
    const positive = (flag: string, integer: boolean): number | null => {
      const text = values[flag as keyof typeof values]
      if (typeof text !== 'string') return null
      const n = Number(text)
      if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw usage(`--${flag} must be ${integer ? 'a whole number' : 'a number'} above 0.`)
      return n
    }

    // What is trained.
    const flopsGiven = count('flops')
    const params = count('params')
    const activeParams = count('active-params')
    let tokens = count('tokens')
    if (values.chinchilla && tokens != null) throw usage('Give --tokens or --chinchilla, not both.')
    if (values.chinchilla) {
      if (params == null && activeParams == null) throw usage('--chinchilla needs --params (it sets the tokens to 20 × the parameters).')
      tokens = chinchillaTokens(params ?? activeParams ?? 0)
    }
    let flops: number
    let formula: string
    if (flopsGiven != null) {
      if (tokens != null || activeParams != null) throw usage('Give either --flops or the model (--params, --active-params, --tokens or --chinchilla), not both; --params may come with --flops for the memory check.')
      flops = flopsGiven
      formula = 'given'
    } else {
      const computing = activeParams ?? params
      if (computing == null || tokens == null) throw usage('Say what is trained: --flops F, or --params N with --tokens D or --chinchilla (numbers like 7e9, 7B, 2T).')
      flops = trainingFlops(computing, tokens)
      formula = `6 × ${sci(computing)} ${activeParams != null ? 'active parameters' : 'parameters'} × ${sci(tokens)} tokens`
    }
    const mfu = values.mfu == null ? DEFAULT_MFU : Number(values.mfu)
    if (!Number.isFinite(mfu) || mfu <= 0 || mfu > 1) throw usage('--mfu must be a number above 0 and at most 1, like 0.4.')
    const gpus = positive('gpus', true)
    const deadlineHours = positive('deadline', false)
    if (gpus != null && deadlineHours != null) throw usage('Give --gpus or --deadline, not both.')
    const checkpointMinutes = positive('checkpoint-minutes', false)
    const interruptionsText = values['interruptions-per-day']
    let interruptionsPerDay: number | null = null
    if (interruptionsText != null) {
      interruptionsPerDay = Number(interruptionsText)
      if (!Number.isFinite(interruptionsPerDay) || interruptionsPerDay < 0) throw usage('--interruptions-per-day must be a number of at least 0.')
    }
    const only = values.classes == null ? null : values.classes.split(',').map((c) => c.trim()).filter((c) => c !== '')
    if (values.offline && values.matcher != null) throw usage('Give --matcher or --offline, not both.')
    if (!values.offline && values.prices != null) throw usage('--prices is for --offline quotes.')
    const token = (values.token ?? ZERO_ADDRESS).toLowerCase()
    if (!/^0x[0-9a-f]{40}$/.test(token)) throw usage('--token must be a 0x address of 40 hex digits.')

    let table
    try {
      table = await loadGpuClasses()
    } catch (err) {
      throw new CliError('GPU_CLASSES', `${(err as Error).message}.`, { cause: err })
    }
    const classes = table.classes.map((c) => ({ class: c.class, bf16Tflops: c.bf16Tflops, memoryMiB: c.memoryMiB }))

    let market: QuoteMarket
    let decimals: number
    let reference: (ReferencePriceFile & { file: string }) | null = null
    let matcher: string[] | null = null
    let otherTokens = 0
    let invalid = 0
    let recordsMissing = false
    if (values.offline) {
      reference = await loadReferencePrices(values.prices == null ? null : resolve(ctx.cwd, values.prices))
      decimals = reference.decimals
      market = { kind: 'offline', prices: reference.prices }
    } else {
      decimals = values.decimals == null ? 6 : Number(values.decimals)
      if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) throw usage('--decimals must be an integer from 0 to 36.')
      matcher = values.matcher ?? await localMatcher(resolveDataDir(values['data-dir'], ctx))
      if (matcher == null) {
        throw new CliError('NO_MATCHER', 'No matcher given and none running here. Pass --matcher /ip4/…/tcp/…/p2p/…, or --offline for reference prices.', { exitCode: EXIT.USAGE })
      }
      const read = await readWholeBook(ctx, matcher, { includeSimulated: values['include-simulated'], includeRecords: true })
      invalid = read.invalid
      if (!read.recordsServed) recordsMissing = true
      const capacity: OfferedCapacity[] = []
      for (const offer of read.offers) {
        if (offer.token.toLowerCase() !== token) {
          otherTokens++
          continue
        }
        const record = read.records.get(offer.peerId)
        for (const g of offer.gpus) {
          if (g.simulated && !values['include-simulated']) continue
          capacity.push({
            peerId: offer.peerId,
            gpuClass: g.class,
            pricePerGpuHour: g.pricePerGpuHour,
            countFree: g.countFree,
            observation: record == null ? null : { observedSec: record.observedSec, interruptions: record.interruptions }
          })
        }
      }
      market = { kind: 'live', capacity }
    }

    let quote: Quote
    try {
      quote = buildQuote({ flops, params, mfu, classes, market, gpus, deadlineHours, checkpointMinutes, interruptionsPerDay, only })
    } catch (err) {
      throw usage(`${(err as Error).message}.`)
    }
    const notes: string[] = []
    if (reference != null) notes.push(`Offline: prices are reference list prices in ${reference.currency} from ${reference.file} (as of ${reference.asOf}), not live offers; the source of each is in the JSON (--json) and in that file.`)
    if (invalid > 0) notes.push(`Left out ${invalid} offer${invalid === 1 ? '' : 's'} whose signature did not verify.`)
    if (recordsMissing) notes.push('This matcher does not serve records of providers\' interruptions; the lost-work line needs --interruptions-per-day.')
    if (otherTokens > 0) notes.push(`Left out ${otherTokens} offer${otherTokens === 1 ? '' : 's'} priced in another token than ${token} (--token).`)

    if (values.json) {
      ctx.stdout(JSON.stringify(toJson(quote, { formula, params, activeParams, tokens, decimals, token, matcher, reference, notes }), null, 2) + '\n')
    } else {
      ctx.stdout(renderQuote(quote, { formula, decimals, matcher, reference, checkpointMinutes, notes }))
    }
    return EXIT.OK
  }
}

/** 3.15e+23 → "3.15e23"; small counts as plain numbers. */
function sci (n: number): string {
  return n >= 1e6 ? n.toExponential(3).replace(/\.?0+e/, 'e').replace('e+', 'e') : String(n)
}

async function loadReferencePrices (file: string | null): Promise<ReferencePriceFile & { file: string }> {
  let path = file
  if (path == null) {
    const newest = newestReferencePriceFile(await readdir(CONFIG_DIR).catch(() => []))
    if (newest == null) throw new CliError('NO_REFERENCE_PRICES', `No reference price file (reference-prices-YYYY-MM-DD.json) in ${CONFIG_DIR}; name one with --prices FILE.`, { exitCode: EXIT.USAGE })
    path = join(CONFIG_DIR, newest)
  }
  let doc: unknown
  try {
    doc = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw new CliError('BAD_REFERENCE_PRICES', `Cannot read the reference prices ${path}: ${(err as Error).message}.`, { exitCode: EXIT.USAGE, cause: err })
  }
  try {
    return { ...parseReferencePrices(doc), file: path }
  } catch (err) {
    throw new CliError('BAD_REFERENCE_PRICES', `${path}: ${(err as Error).message}.`, { exitCode: EXIT.USAGE, cause: err })
  }
}

interface JsonContext {
  formula: string
  params: number | null
  activeParams: number | null
  tokens: number | null
  decimals: number
  token: string
  matcher: string[] | null
  reference: (ReferencePriceFile & { file: string }) | null
  notes: string[]
}

/** Money as base units (decimal string) and as token units (`…Tokens`); everything else as numbers. */
function toJson (q: Quote, c: JsonContext): object {
  const money = (name: string, amount: bigint | null): Record<string, string | null> => ({
    [name]: amount?.toString() ?? null,
    [`${name}Tokens`]: amount == null ? null : formatAmount(amount, c.decimals, c.decimals)
  })
  return {
    flops: q.flops,
    flopsFrom: c.formula,
    params: c.params,
    activeParams: c.activeParams,
    tokens: c.tokens,
    mfu: q.mfu,
    market: q.market,
    matcher: c.matcher,
    referencePrices: c.reference == null ? null : { file: c.reference.file, asOf: c.reference.asOf, currency: c.reference.currency },
    token: c.token as Address,
    decimals: c.decimals,
    classes: q.classes.map((r: ClassQuote) => ({
      class: r.class,
      bf16Tflops: r.bf16Tflops,
      memoryMiB: r.memoryMiB,
      gpuHours: r.gpuHours,
      gpuMilliseconds: r.gpuMilliseconds.toString(),
      gpus: r.gpus,
      gpusAvailable: r.gpusAvailable,
      enoughGpus: r.enoughGpus,
      wallClockHours: r.wallClockHours,
      ...money('priceLow', r.priceLow),
      ...money('priceMedian', r.priceMedian),
      ...money('costLow', r.costLow),
      ...money('costMedian', r.costMedian),
      ...money('costGpus', r.costGpus),
      stateBytesPerGpu: r.stateBytesPerGpu,
      fits: r.fits,
      fitsUnsharded: r.fitsUnsharded,
      lostWork: r.lostWork == null
        ? null
        : {
            basis: r.lostWork.basis,
            interruptionsPerDay: r.lostWork.interruptionsPerDay,
            expectedInterruptions: r.lostWork.expectedInterruptions,
            lostWallMs: r.lostWork.lostWallMs.toString(),
            lostGpuHours: r.lostWork.lostGpuHours,
            providersWithoutRecord: r.lostWork.providersWithoutRecord,
            ...money('cost', r.lostWork.cost)
          },
      priceSource: r.priceSource
    })),
    warnings: q.warnings,
    notes: c.notes
  }
}

/** 1,234 · 12.3 · 0.123 */
function num (x: number): string {
  if (x >= 1000) return Math.round(x).toLocaleString('en-US')
  if (x >= 10) return x.toFixed(1)
  return x.toPrecision(3)
}

function hours (h: number | null): string {
  if (h == null) return '-'
  if (h < 1) return `${(h * 60).toFixed(1)} min`
  if (h < 48) return `${h.toFixed(1)} h`
  if (h < 24 * 730) return `${(h / 24).toFixed(1)} d`
  return `${(h / 24 / 365).toFixed(1)} y`
}

function bytes (b: number | null): string {
  if (b == null) return '-'
  const gib = b / 2 ** 30
  return gib >= 1024 ? `${(gib / 1024).toFixed(1)} TiB` : `${gib.toFixed(gib >= 10 ? 0 : 1)} GiB`
}

function renderQuote (q: Quote, c: { formula: string, decimals: number, matcher: string[] | null, reference: ReferencePriceFile | null, checkpointMinutes: number | null, notes: string[] }): string {
  const amount = (a: bigint | null): string => a == null ? '-' : formatAmount(a, c.decimals)
  const lines: string[] = []
  lines.push(`Training compute: ${sci(q.flops)} FLOPs${c.formula === 'given' ? '' : ` = ${c.formula}`}; MFU ${q.mfu}.`)
  lines.push('GPU-hours = FLOPs / (dense BF16 peak × MFU) / 3600; cost = price per GPU-hour × GPU-hours, billed per provider in whole base units.')
  lines.push(c.reference != null ? `Prices: reference list prices (${c.reference.currency}, as of ${c.reference.asOf}), not live offers.` : `Prices: offers in the book of ${(c.matcher ?? []).join(', ')} now.`)
  lines.push('')
  if (q.classes.length === 0) {
    lines.push(c.reference != null ? 'No class has a reference price.' : 'No GPUs of a known class are offered now.')
  } else {
    const header = ['CLASS', 'PEAK TF', 'GPU-HOURS', 'GPUS', 'FREE', 'WALL-CLOCK', 'PRICE LOW', 'PRICE MEDIAN', 'COST LOW', 'COST MEDIAN', 'COST ON GPUS', 'STATE/GPU', 'FITS']
    const rows = q.classes.map((r) => [
      r.class,
      String(r.bf16Tflops),
      Math.round(r.gpuHours).toLocaleString('en-US'),
      r.gpus == null ? '-' : String(r.gpus),
      r.gpusAvailable == null ? '-' : String(r.gpusAvailable),
      hours(r.wallClockHours),
      amount(r.priceLow),
      amount(r.priceMedian),
      amount(r.costLow),
      amount(r.costMedian),
      r.enoughGpus ? amount(r.costGpus) : 'not offered',
      bytes(r.stateBytesPerGpu),
      r.fits == null ? '?' : r.fits ? (r.fitsUnsharded === true ? 'yes' : 'sharded') : 'NO'
    ])
    lines.push(renderTable(header, rows))
    lines.push('Sorted by the cost on the GPUs of each row (COST ON GPUS: the cheapest GPUS offered, each for the wall-clock time). STATE/GPU is the training state, 16 bytes per parameter (mixed-precision Adam), sharded over those GPUs; activations come on top.')
  }
  if (c.checkpointMinutes != null) {
    lines.push('')
    lines.push(`Expected extra cost of lost work, checkpoints every ${c.checkpointMinutes} min (each interruption redoes half an interval on every GPU):`)
    for (const r of q.classes) {
      const l = r.lostWork
      if (l == null) {
        lines.push(`  ${r.class}: not estimated (${c.reference != null ? 'no matcher records offline; give --interruptions-per-day' : r.enoughGpus ? 'the matcher has no record of these providers' : 'not enough GPUs offered'}).`)
        continue
      }
      const unrecorded = l.providersWithoutRecord > 0 ? `; ${l.providersWithoutRecord} provider${l.providersWithoutRecord === 1 ? '' : 's'} without a record not counted` : ''
      lines.push(`  ${r.class}: ${num(l.interruptionsPerDay)} interruptions/day (${l.basis}${unrecorded}) × ${hours(r.wallClockHours)} = ${num(l.expectedInterruptions)} expected, ${num(l.lostGpuHours)} GPU-hours redone, +${amount(l.cost)}`)
    }
  }
  for (const w of q.warnings) lines.push(`warning: ${w}`)
  for (const n of c.notes) lines.push(`note: ${n}`)
  return lines.join('\n') + '\n'
}
