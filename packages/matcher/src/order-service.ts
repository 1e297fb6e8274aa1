/**
 * Order intake on `/gpumesh/order/1.0.0`: checks a renter's signed order, matches it against the book,
 * proposes to the best candidates and answers with an `order-result`. A request it cannot take is
 * answered with a reason code (`MatcherRequestErrorCode`), never an exception across the wire.
 */
import { HandlerError, handle } from '@gpumesh/net'
import {
  MAX_MESSAGE_BYTES, ORDER_PROTOCOL, decodeOrder, encodeOrderResult, formatAmount, isProtocolError, marketDomain,
  verifyOrder
} from '@gpumesh/protocol'
import { explainNoMatch } from './explain.js'
import { findCandidates } from './matching.js'
import type { MatcherRequestErrorCode } from './errors.js'
import type { LatencyEstimates } from './latency.js'
import type { OrderBook } from './order-book.js'
import type { Proposer, ProposalOutcome } from './proposer.js'
import type { ProviderRecords } from './provider-record.js'
import type { Clock } from '@gpumesh/protocol'
import type { RateLimitOptions, RequestContext, StreamHost } from '@gpumesh/net'
import type { DeclinedProposal, NoMatchExplanation, Order, OrderResult } from '@gpumesh/protocol'
import type { Logger } from 'pino'

export interface OrderServiceOptions {
  maxProposals: number
  proposalTimeoutMs: number
  maxConcurrentOrders: number
  maxRememberedOrders: number
  tokenDecimals: number
  rateLimit: RateLimitOptions
}

export interface OrderServiceComponents {
  node: StreamHost
  book: OrderBook
  records: ProviderRecords
  latency: LatencyEstimates
  proposer: Proposer
  clock: Clock
  logger: Logger
}

interface Remembered {
  /** The order's signature, so a different order under the same id is told apart from a retry. */
  signature: string
  expiresAt: number
  result: Promise<OrderResult>
}

function refuse (code: MatcherRequestErrorCode, message: string, cause?: unknown): HandlerError {
  return new HandlerError(code, message.slice(0, 256), { cause })
}

/** The sentence for a no-match where providers fit but none leased. */
function declinedMessage (fitting: number, declined: readonly DeclinedProposal[]): string {
  const counts = new Map<string, number>()
  for (const d of declined) counts.set(d.code, (counts.get(d.code) ?? 0) + 1)
  const parts = [...counts].map(([code, n]) => `${n} ${code}`)
  return `${fitting} ${fitting === 1 ? 'offer fits' : 'offers fit'} but no provider leased (${declined.length} proposed: ${parts.join(', ')})`
}

export class OrderService {
  readonly #components: OrderServiceComponents
  readonly #options: OrderServiceOptions
  readonly #log: Logger
  readonly #orders = new Map<string, Remembered>()
  #inFlight = 0
  #controller: AbortController | null = null

  constructor (components: OrderServiceComponents, options: OrderServiceOptions) {
    this.#components = components
    this.#options = options
    this.#log = components.logger.child({ module: 'order-service' })
  }

  /** The handler's deadline: every proposal may take its full timeout, plus room to answer. */
  get handlerTimeoutMs (): number {
    return this.#options.maxProposals * this.#options.proposalTimeoutMs + 5_000
  }

  async start (): Promise<void> {
    if (this.#controller != null) return
    this.#controller = new AbortController()
    await handle(this.#components.node, ORDER_PROTOCOL, async (bytes, ctx) => this.#serve(bytes, ctx), {
      maxRequestBytes: MAX_MESSAGE_BYTES.order,
      maxResponseBytes: MAX_MESSAGE_BYTES['order-result'],
      timeoutMs: this.handlerTimeoutMs,
      rateLimit: this.#options.rateLimit,
      maxInboundStreams: 8
    })
  }

  /** Stops taking orders and aborts proposals in progress. */
  async stop (): Promise<void> {
    if (this.#controller == null) return
    this.#controller.abort()
    this.#controller = null
    try {
      await this.#components.node.unhandle(ORDER_PROTOCOL)
    } catch (err) {
      this.#log.debug({ err }, 'unhandle failed (node already stopping)')
    }
  }

  /** Forgets answers to orders that have expired. */
  prune (now: number): void {
    for (const [orderId, remembered] of this.#orders) {
      if (remembered.expiresAt <= now) this.#orders.delete(orderId)
    }
  }

  async #serve (bytes: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    const controller = this.#controller
    if (controller == null) throw refuse('STOPPING', 'the matcher is stopping')
    const now = this.#components.clock.now()
    let order: Order
    try {
      order = decodeOrder(bytes, { now })
      verifyOrder(order, marketDomain(order.chainId))
    } catch (err) {
      if (isProtocolError(err)) throw refuse(err.code, err.message, err)
      throw err
    }
    if (order.renterPeerId !== ctx.peerId.toString()) {
      throw refuse('NOT_RENTER', 'the order names another peer as its renter')
    }
    const held = this.#orders.get(order.orderId)
    if (held != null) {
      if (held.signature !== order.signature.signature) throw refuse('DUPLICATE_ORDER', 'another order has this order id')
      return encodeOrderResult(await held.result)
    }
    if (this.#inFlight >= this.#options.maxConcurrentOrders || this.#orders.size >= this.#options.maxRememberedOrders) {
      throw refuse('BUSY', 'too many orders at once; try again shortly')
    }
    this.#inFlight++
    const signal = AbortSignal.any([controller.signal, ctx.signal])
    const result = this.#match(order, signal).finally(() => { this.#inFlight-- })
    this.#orders.set(order.orderId, { signature: order.signature.signature, expiresAt: order.expiresAt, result })
    // A failed match is not remembered: the renter may try the same order again.
    result.catch(() => { this.#orders.delete(order.orderId) })
    return encodeOrderResult(await result)
  }

  /** Matches and proposes; the result for the renter. */
  async #match (order: Order, signal: AbortSignal): Promise<OrderResult> {
    const { book, records, latency, proposer, clock } = this.#components
    const now = clock.now()
    const candidates = findCandidates(book, order, {
      now,
      records,
      latency: (peerId) => latency.get(peerId),
      limit: this.#options.maxProposals
    })
    this.#log.info({ orderId: order.orderId, candidates: candidates.length }, 'order received')
    let outcome: ProposalOutcome = { lease: null, declined: [] }
    if (candidates.length > 0) outcome = await proposer.propose(order, candidates, { signal })
    if (outcome.lease != null) {
      const { candidate, terms, signature } = outcome.lease
      return {
        type: 'order-result',
        status: 'leased',
        orderId: order.orderId,
        lease: { terms, signature },
        providerPeerId: candidate.peerId,
        providerAddresses: candidate.offer.addresses
      }
    }
    return { type: 'order-result', status: 'no-match', orderId: order.orderId, explanation: this.#explain(order, outcome.declined) }
  }

  #explain (order: Order, declined: DeclinedProposal[]): NoMatchExplanation {
    const now = this.#components.clock.now()
    const core = explainNoMatch(this.#components.book, order, now, { decimals: this.#options.tokenDecimals })
    const cheapest = core.cheapestFitting?.pricePerGpuHour ?? null
    let message = core.message
    if (core.fitting > 0 && declined.length > 0) message = declinedMessage(core.fitting, declined)
    else if (core.fitting > 0) message = `${core.message}; the fitting offers changed while matching, try again`
    if (cheapest != null && !message.includes('/GPU-hour')) message += `; the cheapest would need ${formatAmount(cheapest, this.#options.tokenDecimals)}/GPU-hour`
    return {
      offersConsidered: core.offersConsidered,
      fitting: core.fitting,
      reasons: core.reasons.map((r) => ({ code: r.code, count: r.count })).slice(0, 32),
      cheapestPricePerGpuHour: cheapest,
      declined: declined.slice(0, 32),
      message: message.slice(0, 1024)
    }
  }
}
