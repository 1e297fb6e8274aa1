import { z } from 'zod'
import { parseAmount } from '@gpumesh/protocol'
import type { ReferencePrice } from './quote.js'

/**
 * Reference prices for quotes without a matcher (`gpumesh quote --offline`): public list prices of
 * GPU rentals, one per class, each with where and when it was read. They live in dated files
 * `config/reference-prices-YYYY-MM-DD.json`; the newest is used unless another is named. Amounts are
 * decimal text in the file's currency and become base units of a `decimals`-decimal token exactly.
 */

const DATE = /^\d{4}-\d{2}-\d{2}$/

const fileSchema = z.object({
  version: z.literal(1),
  asOf: z.string().regex(DATE, 'expected a date like 2026-11-30'),
  currency: z.string().min(1).max(16),
  decimals: z.int().min(0).max(36),
  prices: z.array(z.strictObject({
    class: z.string().min(1).max(128),
    pricePerGpuHour: z.string().min(1).max(64),
    vendor: z.string().min(1).max(128),
    offering: z.string().min(1).max(256),
    url: z.url(),
    seen: z.string().regex(DATE, 'expected a date like 2026-11-30'),
    note: z.string().max(512).optional()
  })).min(1)
})

export interface ReferencePriceFile {
  asOf: string
  currency: string
  decimals: number
  prices: ReferencePrice[]
}

/** Checks a parsed reference price file; throws a RangeError naming the first bad key. */
export function parseReferencePrices (doc: unknown): ReferencePriceFile {
  const parsed = fileSchema.safeParse(doc)
  if (!parsed.success) {
    const first = parsed.error.issues[0]
    throw new RangeError(`the reference prices are malformed at ${first?.path.join('.') ?? '(root)'}: ${first?.message ?? 'invalid'}`)
  }
  const f = parsed.data
  const seen = new Set<string>()
  const prices = f.prices.map((p, i): ReferencePrice => {
    if (seen.has(p.class.toLowerCase())) throw new RangeError(`the reference prices list ${p.class} twice (prices.${i})`)
    seen.add(p.class.toLowerCase())
    let amount: bigint
    try {
      amount = parseAmount(p.pricePerGpuHour, f.decimals)
    } catch (err) {
      throw new RangeError(`the reference prices are malformed at prices.${i}.pricePerGpuHour: ${(err as Error).message}`, { cause: err })
    }
    return { class: p.class, pricePerGpuHour: amount, source: `${p.vendor}, ${p.offering} (${p.url}, read ${p.seen})` }
  })
  return { asOf: f.asOf, currency: f.currency, decimals: f.decimals, prices }
}

/** The newest dated reference price file name among `names`, or null. */
export function newestReferencePriceFile (names: readonly string[]): string | null {
  const dated = names.filter((n) => /^reference-prices-\d{4}-\d{2}-\d{2}\.json$/.test(n)).sort()
  return dated[dated.length - 1] ?? null
}
