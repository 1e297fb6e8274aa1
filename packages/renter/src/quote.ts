/**
 * What a training run costs on the market, from arithmetic a reader can check. Pure: no I/O, no clock.
 *
 * Compute. A dense transformer's training takes about C = 6·N·D FLOPs for N parameters and D tokens:
 * 2·N·D for the forward pass and 4·N·D for the backward pass (Kaplan et al. 2020, "Scaling Laws for
 * Neural Language Models", §2.1). It leaves out attention over the context (per token about
 * 6·n_layer·n_ctx·d_model more, small while n_ctx ≪ 12·d_model), embeddings, and recomputation of
 * activations (which adds a forward pass, about +33%, to the hardware's work but not to the model's
 * FLOPs: MFU counts the model's). For a mixture of experts N is the parameters active per token, not
 * the total. Chinchilla's compute-optimal data is D ≈ 20·N (Hoffmann et al. 2022).
 *
 * Time. GPU-hours = C / (peak · MFU) / 3600, with the class's dense BF16 peak in FLOP/s and MFU the
 * share of it the run achieves. Wall-clock time on G GPUs is GPU-hours / G (perfect scaling: the MFU
 * is meant to include what communication costs).
 *
 * Money. FLOPs and hours are floats (physics); money is not. GPU time becomes an integer number of
 * GPU-milliseconds, rounded up (`gpuMillisecondsOf`), and every cost is the billing rule itself,
 * floor(price per GPU-hour × GPU-milliseconds / 3,600,000) base units (`cumulativeAmount`), applied per
 * provider the way its lease would bill it. So the GPU time is never under-counted, and each amount is
 * what a provider would charge for that time, exactly.
 *
 * Memory. Mixed-precision Adam keeps 16 bytes per parameter: 2 (BF16/FP16 weights) + 2 (gradients) +
 * 12 (FP32 master weights, momentum, variance) — Rajbhandari et al. 2020, "ZeRO", §3.1. Sharding the
 * optimizer state, gradients and weights over G GPUs (ZeRO stage 3, PyTorch FSDP) leaves 16·N/G bytes
 * per GPU. Activations, buffers and fragmentation come on top and depend on batch and sequence length:
 * a class marked as fitting holds the training state, not necessarily the whole run.
 */
import { cumulativeAmount } from '@gpumesh/protocol'

/** Default model FLOPs utilisation: the middle of what large published runs report (0.38–0.46). */
export const DEFAULT_MFU = 0.4
/** Above this MFU a quote warns: published large runs stay well below it. */
export const MFU_WARNING_ABOVE = 0.6
/** Bytes of training state per parameter with mixed-precision Adam (ZeRO, §3.1). */
export const ADAM_MIXED_PRECISION_BYTES_PER_PARAM = 16
/** Chinchilla's compute-optimal tokens per parameter. */
export const CHINCHILLA_TOKENS_PER_PARAM = 20
/** GPUs assumed per class in an offline quote that names neither `gpus` nor `deadlineHours` (one 8-GPU server). */
export const DEFAULT_OFFLINE_GPUS = 8

const MS_PER_HOUR = 3_600_000
const MIB = 1024 * 1024

/** A count with an optional SI-style suffix: `7e9`, `7B`, `70b`, `2T`, `1.5M`, `300k`. */
const COUNT = /^(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?\s*([kmbgtp])?$/i
const SUFFIX: Record<string, number> = { k: 1e3, m: 1e6, b: 1e9, g: 1e9, t: 1e12, p: 1e15 }

/**
 * Reads a positive count such as a number of parameters, tokens or FLOPs: plain (`175000000000`),
 * exponent (`1.75e11`) or suffixed (`175B`; k, M, B or G, T, P; any case). Throws a RangeError whose
 * message says what is accepted.
 */
export function parseCount (text: string): number {
  const match = COUNT.exec(text.trim())
  if (match == null) throw new RangeError(`"${text}" is not a count: write it like 7e9, 7B, 70b or 2T`)
  const value = Number(`${match[1] ?? ''}e${match[2] ?? '0'}`) * (match[3] == null ? 1 : SUFFIX[match[3].toLowerCase()] ?? 1)
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`"${text}" must be a finite number above 0`)
  return value
}

/** C ≈ 6·N·D for N (active) parameters trained on D tokens. */
export function trainingFlops (params: number, tokens: number): number {
  return 6 * params * tokens
}

/** Chinchilla's compute-optimal token count for N parameters: D = 20·N. */
export function chinchillaTokens (params: number): number {
  return CHINCHILLA_TOKENS_PER_PARAM * params
}

/** GPU-hours = FLOPs / (peak TFLOP/s × 10¹² × MFU) / 3600. */
export function gpuHoursFor (flops: number, peakTflops: number, mfu: number): number {
  if (!(peakTflops > 0)) throw new RangeError('the peak must be above 0 TFLOP/s')
  if (!(mfu > 0 && mfu <= 1)) throw new RangeError('the MFU must be above 0 and at most 1')
  return flops / (peakTflops * 1e12 * mfu) / 3600
}

/** GPU time as an integer count of GPU-milliseconds, rounded up so it is never under-counted. */
export function gpuMillisecondsOf (gpuHours: number): bigint {
  if (!Number.isFinite(gpuHours) || gpuHours < 0) throw new RangeError('GPU-hours must be a finite number of at least 0')
  return BigInt(Math.ceil(gpuHours * MS_PER_HOUR))
}

/** Exact: base units a provider bills for `gpuMilliseconds` at `pricePerGpuHour` (the billing rule). */
export function costOf (pricePerGpuHour: bigint, gpuMilliseconds: bigint): bigint {
  return cumulativeAmount(pricePerGpuHour, gpuMilliseconds)
}

/** ceil(a / b) for positive bigints. */
function divCeil (a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b
}

/** Training state of mixed-precision Adam before sharding: 16 bytes per parameter. */
export function trainingStateBytes (params: number): number {
  return ADAM_MIXED_PRECISION_BYTES_PER_PARAM * params
}

/**
 * Training state per GPU when G GPUs share it, by ZeRO stage (Rajbhandari et al. 2020, Figure 1):
 * 0 replicates everything (16·N); 1 shards the optimizer state (4·N + 12·N/G); 2 also the gradients
 * (2·N + 14·N/G); 3 also the weights (16·N/G, as PyTorch FSDP's full sharding).
 */
export function shardedStateBytes (params: number, gpus: number, stage: 0 | 1 | 2 | 3 = 3): number {
  if (!(Number.isInteger(gpus) && gpus >= 1)) throw new RangeError('gpus must be a whole number of at least 1')
  switch (stage) {
    case 0: return 16 * params
    case 1: return 4 * params + 12 * params / gpus
    case 2: return 2 * params + 14 * params / gpus
    case 3: return 16 * params / gpus
  }
}

/** GPUs needed to finish `gpuHours` of work within `deadlineHours` of wall-clock time. */
export function gpusForDeadline (gpuHours: number, deadlineHours: number): number {
  if (!(deadlineHours > 0)) throw new RangeError('the deadline must be above 0 hours')
  return Math.max(1, Math.ceil(gpuHours / deadlineHours))
}

/**
 * Expected work lost to interruptions: with checkpoints every `checkpointMinutes`, an interruption
 * at a uniformly random moment loses half an interval of progress on every GPU of the run, so the
 * expected loss is (interruptions per hour × wall-clock hours) × interval / 2 of wall-clock time, on
 * all the run's GPUs. First order: it ignores the time to restart and interruptions of the re-done work.
 */
export function expectedLostWallMs (interruptionsPerHour: number, wallClockHours: number, checkpointMinutes: number): { expectedInterruptions: number, lostWallMs: bigint } {
  if (!(interruptionsPerHour >= 0) || !(wallClockHours >= 0) || !(checkpointMinutes > 0)) {
    throw new RangeError('interruptions, hours must be at least 0 and the checkpoint interval above 0')
  }
  const expectedInterruptions = interruptionsPerHour * wallClockHours
  return { expectedInterruptions, lostWallMs: BigInt(Math.ceil(expectedInterruptions * checkpointMinutes * 60_000 / 2)) }
}

/** A GPU class's figures from `config/gpu-classes.json`. */
export interface ClassPeak {
  class: string
  /** Dense BF16 (FP16 where the part has no BF16) tensor peak. */
  bf16Tflops: number
  memoryMiB: number
}

/** Free GPUs of one class in one provider's offer, at its price, with what the matcher observed of it. */
export interface OfferedCapacity {
  peerId: string
  gpuClass: string
  pricePerGpuHour: bigint
  countFree: number
  observation: { observedSec: number, interruptions: number } | null
}

/** A reference price of one class, for quotes without a matcher. */
export interface ReferencePrice {
  class: string
  pricePerGpuHour: bigint
  source: string
}

export type QuoteMarket =
  | { kind: 'live', capacity: readonly OfferedCapacity[] }
  | { kind: 'offline', prices: readonly ReferencePrice[] }

export interface QuoteInput {
  /** Total training FLOPs. */
  flops: number
  /** Total parameters (for memory), or null when only FLOPs were given. */
  params: number | null
  mfu: number
  classes: readonly ClassPeak[]
  market: QuoteMarket
  /** GPUs per class; null: the offered capacity (live) or `DEFAULT_OFFLINE_GPUS` (offline). */
  gpus: number | null
  /** Finish within this many hours: the GPUs per class follow from it. */
  deadlineHours: number | null
  /** Checkpoint interval for the lost-work line; null: no line. */
  checkpointMinutes: number | null
  /** Assumed interruptions per day of the run, replacing the matcher's observations. */
  interruptionsPerDay: number | null
  /** Only these classes (case-insensitive); null: every class offered (live) or priced (offline). */
  only: readonly string[] | null
}

/** The expected extra cost of work redone after interruptions. */
export interface LostWork {
  /** Interruptions per day the run is exposed to (sum over its providers), or the assumption. */
  interruptionsPerDay: number
  expectedInterruptions: number
  /** Wall-clock milliseconds redone, on every GPU of the run. */
  lostWallMs: bigint
  lostGpuHours: number
  cost: bigint
  /** Providers of the run the matcher has no observation of (not counted in the rate). */
  providersWithoutRecord: number
  /** `observed`: the matcher's records; `assumed`: `interruptionsPerDay` was given. */
  basis: 'observed' | 'assumed'
}

export interface ClassQuote {
  class: string
  bf16Tflops: number
  memoryMiB: number
  gpuHours: number
  gpuMilliseconds: bigint
  /** GPUs the run uses (given, from the deadline, or the offered capacity); null when none are offered. */
  gpus: number | null
  /** Free GPUs of the class in the book; null offline. */
  gpusAvailable: number | null
  /** Whether `gpus` of them are offered now (always true offline). */
  enoughGpus: boolean
  /** ceil(GPU-milliseconds / gpus), as hours; null without `gpus`. */
  wallClockHours: number | null
  wallClockMs: bigint | null
  priceLow: bigint | null
  /** Lower median of the free GPUs' prices (each GPU counted once). */
  priceMedian: bigint | null
  /** All the GPU time at the cheapest price (as if that price had unlimited capacity). */
  costLow: bigint | null
  costMedian: bigint | null
  /** The cheapest `gpus` GPUs together, each for the wall-clock time, billed per provider; null when not offered. */
  costGpus: bigint | null
  /** Training state per GPU, sharded over `gpus` when known; null without `params`. */
  stateBytesPerGpu: number | null
  /** Whether the training state fits (sharded over `gpus` when known); null without `params`. */
  fits: boolean | null
  /** Whether it fits one GPU without sharding; null without `params`. */
  fitsUnsharded: boolean | null
  lostWork: LostWork | null
  /** Offline: where the price comes from. */
  priceSource: string | null
}

export interface Quote {
  flops: number
  mfu: number
  params: number | null
  market: 'live' | 'offline'
  classes: ClassQuote[]
  /** Sentences for the renter, in plain words. */
  warnings: string[]
  /** Offered classes left out because `config/gpu-classes.json` has no peak for them. */
  unknownClasses: string[]
}

/**
 * Lower median of the free GPUs' prices, each GPU counted once: the middle GPU's price, or the lower of
 * the two middle ones; never an average of money. `sorted` is cheapest first.
 */
function lowerMedian (sorted: readonly OfferedCapacity[]): bigint | null {
  const total = sorted.reduce((n, c) => n + c.countFree, 0)
  if (total === 0) return null
  let index = Math.floor((total - 1) / 2)
  for (const c of sorted) {
    if (index < c.countFree) return c.pricePerGpuHour
    index -= c.countFree
  }
  return null
}

function comparePrice (a: OfferedCapacity, b: OfferedCapacity): number {
  if (a.pricePerGpuHour !== b.pricePerGpuHour) return a.pricePerGpuHour < b.pricePerGpuHour ? -1 : 1
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0
}

/** The cheapest `gpus` free GPUs (from `sorted`, cheapest first) as (provider, count) slices, or null when fewer are offered. */
function cheapest (sorted: readonly OfferedCapacity[], gpus: number): Array<{ offer: OfferedCapacity, count: number }> | null {
  const picked: Array<{ offer: OfferedCapacity, count: number }> = []
  let left = gpus
  for (const offer of sorted) {
    if (left <= 0) break
    const count = Math.min(left, offer.countFree)
    if (count <= 0) continue
    picked.push({ offer, count })
    left -= count
  }
  return left > 0 ? null : picked
}

function fmtBytes (bytes: number): string {
  const gib = bytes / (1024 * MIB)
  return gib >= 1024 ? `${(gib / 1024).toFixed(1)} TiB` : `${gib.toFixed(gib >= 100 ? 0 : 1)} GiB`
}

/**
 * The quote: one row per class (offered now, or priced offline, or named in `only`), sorted by what
 * the run costs on the GPUs it uses (`costGpus`, else `costLow`; unpriced last), and the warnings.
 */
export function buildQuote (input: QuoteInput): Quote {
  if (!(input.flops > 0) || !Number.isFinite(input.flops)) throw new RangeError('the FLOPs must be a finite number above 0')
  if (!(input.mfu > 0 && input.mfu <= 1)) throw new RangeError('the MFU must be above 0 and at most 1')
  const warnings: string[] = []
  const only = input.only == null ? null : new Set(input.only.map((c) => c.toLowerCase()))
  // A row without a usable peak (0, or not a number) is treated like a class the table lacks.
  const peaks = new Map(input.classes.filter((c) => c.bf16Tflops > 0 && Number.isFinite(c.bf16Tflops)).map((c) => [c.class.toLowerCase(), c]))
  const market = input.market

  // Which classes get a row.
  const names = new Set<string>()
  const unknown = new Set<string>()
  if (market.kind === 'live') {
    for (const c of market.capacity) {
      if (only != null && !only.has(c.gpuClass.toLowerCase())) continue
      if (peaks.has(c.gpuClass.toLowerCase())) names.add(peaks.get(c.gpuClass.toLowerCase())?.class ?? c.gpuClass)
      else unknown.add(c.gpuClass)
    }
  } else {
    for (const p of market.prices) {
      const peak = peaks.get(p.class.toLowerCase())
      if (peak != null && (only == null || only.has(p.class.toLowerCase()))) names.add(peak.class)
    }
  }
  for (const wanted of input.only ?? []) {
    const peak = peaks.get(wanted.toLowerCase())
    if (peak != null) names.add(peak.class)
    else unknown.add(wanted)
  }

  const rows: ClassQuote[] = []
  for (const name of names) {
    const peak = peaks.get(name.toLowerCase()) as ClassPeak
    const gpuHours = gpuHoursFor(input.flops, peak.bf16Tflops, input.mfu)
    const gpuMilliseconds = gpuMillisecondsOf(gpuHours)
    const capacity = market.kind === 'live' ? market.capacity.filter((c) => c.gpuClass.toLowerCase() === name.toLowerCase() && c.countFree > 0) : []
    const reference = market.kind === 'offline' ? market.prices.find((p) => p.class.toLowerCase() === name.toLowerCase()) ?? null : null
    const gpusAvailable = market.kind === 'live' ? capacity.reduce((n, c) => n + c.countFree, 0) : null

    let gpus: number | null
    if (input.deadlineHours != null) gpus = gpusForDeadline(gpuHours, input.deadlineHours)
    else if (input.gpus != null) gpus = input.gpus
    else if (market.kind === 'live') gpus = gpusAvailable != null && gpusAvailable > 0 ? gpusAvailable : null
    else gpus = DEFAULT_OFFLINE_GPUS
    const enoughGpus = gpusAvailable == null || (gpus != null && gpusAvailable >= gpus)

    // Prices: every free GPU counted once (offline: the one reference price).
    const sorted = [...capacity].sort(comparePrice)
    const priceLow = market.kind === 'live' ? sorted[0]?.pricePerGpuHour ?? null : reference?.pricePerGpuHour ?? null
    const priceMedian = market.kind === 'live' ? lowerMedian(sorted) : priceLow

    const wallClockMs = gpus == null ? null : divCeil(gpuMilliseconds, BigInt(gpus))
    let costGpus: bigint | null = null
    let slices: Array<{ offer: OfferedCapacity, count: number }> | null = null
    if (wallClockMs != null && gpus != null) {
      if (market.kind === 'live') {
        slices = cheapest(sorted, gpus)
        if (slices != null) costGpus = slices.reduce((sum, s) => sum + costOf(s.offer.pricePerGpuHour, BigInt(s.count) * wallClockMs), 0n)
      } else if (reference != null) {
        costGpus = costOf(reference.pricePerGpuHour, BigInt(gpus) * wallClockMs)
      }
    }

    let stateBytesPerGpu: number | null = null
    let fits: boolean | null = null
    let fitsUnsharded: boolean | null = null
    if (input.params != null) {
      const memory = peak.memoryMiB * MIB
      fitsUnsharded = trainingStateBytes(input.params) <= memory
      stateBytesPerGpu = gpus == null ? trainingStateBytes(input.params) : shardedStateBytes(input.params, gpus)
      fits = stateBytesPerGpu <= memory
    }

    let lostWork: LostWork | null = null
    if (input.checkpointMinutes != null && wallClockMs != null && gpus != null) {
      const wallClockHours = Number(wallClockMs) / MS_PER_HOUR
      let perDay: number | null = null
      let withoutRecord = 0
      let basis: LostWork['basis'] = 'observed'
      if (input.interruptionsPerDay != null) {
        perDay = input.interruptionsPerDay
        basis = 'assumed'
      } else if (slices != null) {
        perDay = 0
        for (const { offer } of slices) {
          const o = offer.observation
          if (o == null || o.observedSec <= 0) withoutRecord++
          else perDay += o.interruptions / (o.observedSec / 86_400)
        }
        // Nobody observed: no figure rather than a made-up zero.
        if (withoutRecord === slices.length) perDay = null
      }
      if (perDay != null) {
        const { expectedInterruptions, lostWallMs } = expectedLostWallMs(perDay / 24, wallClockHours, input.checkpointMinutes)
        const cost = slices != null
          ? slices.reduce((sum, s) => sum + costOf(s.offer.pricePerGpuHour, BigInt(s.count) * lostWallMs), 0n)
          : priceLow != null ? costOf(priceLow, BigInt(gpus) * lostWallMs) : 0n
        lostWork = {
          interruptionsPerDay: perDay,
          expectedInterruptions,
          lostWallMs,
          lostGpuHours: Number(lostWallMs) * gpus / MS_PER_HOUR,
          cost,
          providersWithoutRecord: withoutRecord,
          basis
        }
      }
    }

    rows.push({
      class: peak.class,
      bf16Tflops: peak.bf16Tflops,
      memoryMiB: peak.memoryMiB,
      gpuHours,
      gpuMilliseconds,
      gpus,
      gpusAvailable,
      enoughGpus,
      wallClockHours: wallClockMs == null ? null : Number(wallClockMs) / MS_PER_HOUR,
      wallClockMs,
      priceLow,
      priceMedian,
      costLow: priceLow == null ? null : costOf(priceLow, gpuMilliseconds),
      costMedian: priceMedian == null ? null : costOf(priceMedian, gpuMilliseconds),
      costGpus,
      stateBytesPerGpu,
      fits,
      fitsUnsharded,
      lostWork,
      priceSource: reference?.source ?? null
    })
  }

  const sortKey = (r: ClassQuote): bigint | null => r.costGpus ?? r.costLow
  rows.sort((a, b) => {
    const ka = sortKey(a)
    const kb = sortKey(b)
    if (ka != null && kb != null && ka !== kb) return ka < kb ? -1 : 1
    if ((ka == null) !== (kb == null)) return ka == null ? 1 : -1
    return a.class < b.class ? -1 : a.class > b.class ? 1 : 0
  })

  if (input.mfu > MFU_WARNING_ABOVE) {
    warnings.push(`An MFU of ${input.mfu} is above ${MFU_WARNING_ABOVE}: large published training runs reach about 0.38 to 0.46, so these GPU-hours and costs are probably too low.`)
  }
  if (market.kind === 'live') {
    for (const r of rows) {
      if (r.gpus != null && !r.enoughGpus && (input.deadlineHours != null || input.gpus != null)) {
        const why = input.deadlineHours != null ? `Finishing within ${input.deadlineHours} h on ${r.class} needs ${r.gpus} GPUs` : `${r.gpus} GPUs of ${r.class} were asked for`
        warnings.push(`${why}, but only ${r.gpusAvailable ?? 0} ${r.gpusAvailable === 1 ? 'is' : 'are'} offered now; the cost of that many is not shown.`)
      } else if (r.gpus == null && r.gpusAvailable === 0) {
        warnings.push(`No ${r.class} GPUs are offered now.`)
      }
    }
  }
  if (input.params != null) {
    const priced = rows.filter((r) => r.priceLow != null)
    if (priced.length > 0 && priced.every((r) => r.fits === false)) {
      warnings.push(`The model's training state, ${fmtBytes(trainingStateBytes(input.params))} at ${ADAM_MIXED_PRECISION_BYTES_PER_PARAM} bytes per parameter, fits none of the ${market.kind === 'live' ? 'offered' : 'priced'} classes, even sharded over the GPUs of each row; use more GPUs (--gpus) or a class with more memory.`)
    }
  }
  if (unknown.size > 0) {
    warnings.push(`Left out ${[...unknown].sort().join(', ')}: no dense BF16 peak above 0 for ${unknown.size === 1 ? 'it' : 'them'} in config/gpu-classes.json.`)
  }
  return { flops: input.flops, mfu: input.mfu, params: input.params, market: market.kind, classes: rows, warnings, unknownClasses: [...unknown].sort() }
}
