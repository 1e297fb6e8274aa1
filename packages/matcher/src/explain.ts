/**
 * Why an order matched nothing, in numbers and in one sentence a renter can act on.
 */
import { MISMATCH_REASONS, entryMismatch, prepareOrder } from './matching.js'
import type { MismatchReason } from './matching.js'
import type { OrderBook } from './order-book.js'
import { formatAmount } from '@gpumesh/protocol'
import type { Order } from '@gpumesh/protocol'
import { DEFAULT_TOKEN_DECIMALS } from './constants.js'

export interface ReasonCount {
  code: MismatchReason
  count: number
}

export interface NoMatchExplanation {
  /** Offers in the book, expired ones included. */
  offersConsidered: number
  /** Offers that do fit (0 when called because nothing matched). */
  fitting: number
  /** Offers per reason, only reasons with a count, most frequent first (ties: check order). */
  reasons: ReasonCount[]
  /** When nothing fits: the cheapest offered GPU kind that fails on price alone, the price it would need. */
  cheapestFitting?: { pricePerGpuHour: bigint, wouldNeed: 'price' }
  /** e.g. "5 offers: 3 too few GPUs, 2 above your price; the cheapest fitting would need 2.10/GPU-hour". */
  message: string
}

export interface ExplainOptions {
  /** Decimals of the order's token, for the message. Default 6. */
  decimals?: number
}

const PHRASES: Record<MismatchReason, string> = {
  EXPIRED: 'expired',
  TOKEN: 'in another token or chain',
  SETTLEMENT: 'settling through another escrow',
  SIMULATED: 'simulated',
  CLASS: 'of another GPU class',
  MEMORY: 'with too little GPU memory',
  COMPUTE_CAPABILITY: 'below the compute capability',
  REGION: 'in another region',
  OPERATOR: 'of another operator',
  TOO_FEW_GPUS: 'too few GPUs',
  DURATION: 'not for this lease length',
  PRICE: 'above your price'
}

const RANK = new Map<MismatchReason, number>(MISMATCH_REASONS.map((code, i) => [code, i]))

function rankOf (code: MismatchReason): number {
  return RANK.get(code) ?? 0
}

/**
 * Attributes every offer in the book to the first check it fails (order: `MISMATCH_REASONS`). An offer
 * selling several GPU kinds is attributed by the kind that gets furthest through the checks: an offer
 * with a wrong-class kind and a too-expensive kind of the wanted class reads "above your price",
 * which is what the renter can change. An offer with no GPU kinds counts as too few GPUs.
 */
export function explainNoMatch (book: OrderBook, order: Order, now: number, options: ExplainOptions = {}): NoMatchExplanation {
  const decimals = options.decimals ?? DEFAULT_TOKEN_DECIMALS
  const prepared = prepareOrder(order)
  const counts = new Map<MismatchReason, number>()
  let offersConsidered = 0
  let fitting = 0
  let cheapest: bigint | undefined
  for (const record of book.records()) {
    offersConsidered++
    let furthest: MismatchReason | null = null
    let fits = false
    for (const entry of record.entries) {
      const reason = entryMismatch(entry, prepared, now)
      if (reason == null) {
        fits = true
        break
      }
      if (reason === 'PRICE' && (cheapest == null || entry.price < cheapest)) cheapest = entry.price
      if (furthest == null || rankOf(reason) > rankOf(furthest)) furthest = reason
    }
    if (fits) {
      fitting++
      continue
    }
    if (furthest == null) {
      const offer = record.offer
      if (offer.expiresAt <= now) furthest = 'EXPIRED'
      else if (record.token !== prepared.token || offer.chainId !== order.chainId) furthest = 'TOKEN'
      else furthest = 'TOO_FEW_GPUS'
    }
    counts.set(furthest, (counts.get(furthest) ?? 0) + 1)
  }
  // When something fits, "would need" means nothing: the renter can already be matched.
  if (fitting > 0) cheapest = undefined

  const reasons: ReasonCount[] = MISMATCH_REASONS
    .filter((code) => counts.has(code))
    .map((code) => ({ code, count: counts.get(code) ?? 0 }))
    .sort((a, b) => b.count - a.count || rankOf(a.code) - rankOf(b.code))

  let message: string
  if (offersConsidered === 0) {
    message = 'No offers in the book.'
  } else {
    const parts = reasons.map((r) => `${r.count} ${PHRASES[r.code]}`)
    if (fitting > 0) parts.unshift(`${fitting} ${fitting === 1 ? 'fits' : 'fit'}`)
    message = `${offersConsidered} ${offersConsidered === 1 ? 'offer' : 'offers'}: ${parts.join(', ')}`
    if (cheapest != null) message += `; the cheapest fitting would need ${formatAmount(cheapest, decimals)}/GPU-hour`
  }

  const explanation: NoMatchExplanation = { offersConsidered, fitting, reasons, message }
  if (cheapest != null) explanation.cheapestFitting = { pricePerGpuHour: cheapest, wouldNeed: 'price' }
  return explanation
}
