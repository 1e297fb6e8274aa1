/**
 * The matcher service, composed: offers come in over gossip (OfferIntake) into the book, orders over
 * ORDER_PROTOCOL (OrderService) are matched and proposed to providers (Proposer), and the book is
 * served over BOOK_PROTOCOL (BookService). It holds no funds and no one else's keys: it needs only a
 * peer key.
 *
 * Start order: node → intake → book service → order service → prune task.
 * Stop order (written down here, in `stop()`): stop taking orders and abort proposals in flight →
 * stop serving the book → stop the prune task → stop judging offers → stop the node if we built it.
 */
import { RepeatingTask, createNode, within } from '@gpumesh/net'
import pino from 'pino'
import { systemClock } from '@gpumesh/protocol'
import {
  DEFAULT_BOOK_RATE_LIMIT, DEFAULT_MAX_CLOCK_SKEW_MS, DEFAULT_MAX_CONCURRENT_ORDERS, DEFAULT_MAX_OFFER_LIFETIME_MS,
  DEFAULT_MAX_OFFERS, DEFAULT_MAX_PROPOSALS, DEFAULT_MAX_REMEMBERED_ORDERS, DEFAULT_ORDER_RATE_LIMIT,
  DEFAULT_PINGS_PER_TICK, DEFAULT_PROPOSAL_TIMEOUT_MS, DEFAULT_PRUNE_INTERVAL_MS, DEFAULT_TOKEN_DECIMALS
} from './constants.js'
import { MatcherError } from './errors.js'
import { LatencyEstimates } from './latency.js'
import { BookService } from './book-service.js'
import { FleetRevocations } from './fleet-revocations.js'
import { OfferIntake } from './offer-intake.js'
import { OrderBook } from './order-book.js'
import { OrderService } from './order-service.js'
import { Proposer } from './proposer.js'
import { ProviderRecords } from './provider-record.js'
import type { Clock } from '@gpumesh/protocol'
import type { FleetRevocationVerdict } from '@gpumesh/protocol'
import type { OfferVerdict } from './offer-intake.js'
import type { GpumeshNode, PrivateKey, RateLimitOptions } from '@gpumesh/net'
import type { Logger } from 'pino'

export interface MatcherOptions {
  /** Providers proposed to per order before answering no-match (default 3). */
  maxProposals?: number
  /** Deadline of one proposal (default 5 s). */
  proposalTimeoutMs?: number
  /** Expired offers leave the book this often (default 5 s). */
  pruneIntervalMs?: number
  maxOfferLifetimeMs?: number
  maxClockSkewMs?: number
  maxOffers?: number
  maxConcurrentOrders?: number
  maxRememberedOrders?: number
  /** Decimals of the token explanations quote prices in (default 6). */
  tokenDecimals?: number
  orderRateLimit?: RateLimitOptions
  bookRateLimit?: RateLimitOptions
  pingsPerTick?: number
  /** Used only when no `node` is given: the node the matcher builds for itself. */
  peerKey?: PrivateKey
  listen?: string[]
  announce?: string[]
  bootstrap?: string[]
  /** Single-host tuning of the built node (tests, devnets); see net's `CreateNodeOptions.loopback`. */
  loopback?: boolean
}

export interface MatcherComponents {
  /**
   * A node built by net's `createNode` (its gossipsub signs and checks authors: StrictSign, the
   * default); the caller stops it. Without one, the matcher builds and stops its own from the options.
   */
  node?: GpumeshNode
  logger?: Logger
  clock?: Clock
  /** Told of every judged offer (tests, metrics). */
  onOfferVerdict?: (verdict: OfferVerdict) => void
  /** Told of every judged fleet revocation (tests). */
  onRevocationVerdict?: (verdict: FleetRevocationVerdict) => void
}

export interface Matcher {
  start: () => Promise<void>
  stop: () => Promise<void>
  /** The libp2p node; throws `MatcherError('NOT_STARTED')` before `start()` when the matcher builds it. */
  readonly node: GpumeshNode
  readonly book: OrderBook
  readonly records: ProviderRecords
  readonly latency: LatencyEstimates
  /** Runs one prune pass now (what the repeating task does). */
  prune: () => void
  /** Fleet revocations kept (from gossip); null before `start()`. */
  readonly revocations: FleetRevocations | null
}

export function createMatcher (options: MatcherOptions = {}, components: MatcherComponents = {}): Matcher {
  return new MatcherService(options, components)
}

class MatcherService implements Matcher {
  readonly book = new OrderBook()
  readonly records = new ProviderRecords()
  readonly latency = new LatencyEstimates()
  readonly #options: MatcherOptions
  readonly #components: MatcherComponents
  readonly #clock: Clock
  readonly #log: Logger
  #node: GpumeshNode | null
  #ownsNode: boolean
  #intake: OfferIntake | null = null
  #revocations: FleetRevocations | null = null
  #orders: OrderService | null = null
  #bookService: BookService | null = null
  readonly #pruneTask: RepeatingTask
  #started = false

  constructor (options: MatcherOptions, components: MatcherComponents) {
    this.#options = options
    this.#components = components
    this.#clock = components.clock ?? systemClock
    this.#log = (components.logger ?? pino({ enabled: false })).child({ module: 'matcher' })
    this.#node = components.node ?? null
    this.#ownsNode = components.node == null
    this.#pruneTask = new RepeatingTask({
      intervalMs: options.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS,
      onError: (err) => { this.#log.error({ err }, 'prune failed') }
    }, async (signal) => { this.prune(); await this.#pingSome(signal) })
  }

  get revocations (): FleetRevocations | null { return this.#revocations }

  get node (): GpumeshNode {
    if (this.#node == null) throw new MatcherError('NOT_STARTED', 'the matcher has not started')
    return this.#node
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    try {
      await this.#startParts()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async #startParts (): Promise<void> {
    const o = this.#options
    if (this.#node == null) {
      this.#node = await createNode({
        ...(o.listen != null ? { listen: o.listen } : {}),
        ...(o.announce != null ? { announce: o.announce } : {}),
        ...(o.bootstrap != null ? { bootstrap: o.bootstrap } : {}),
        ...(o.peerKey != null ? { privateKey: o.peerKey } : {}),
        ...(o.loopback != null ? { loopback: o.loopback } : {})
      })
    }
    const node = this.#node
    const logger = this.#components.logger ?? pino({ enabled: false })
    const onRevocationVerdict = this.#components.onRevocationVerdict
    const revocations = new FleetRevocations({
      node, book: this.book, clock: this.#clock, logger, ...(onRevocationVerdict != null ? { onVerdict: onRevocationVerdict } : {})
    })
    this.#revocations = revocations
    revocations.start()
    this.#intake = new OfferIntake({
      node,
      book: this.book,
      clock: this.#clock,
      logger,
      isRevoked: (offer) => revocations.isRevoked(offer),
      onVerdict: (verdict) => {
        // An offer entering the book starts (or continues) the provider's observed stay.
        if (verdict.reason === 'ADDED' && verdict.offer != null) this.records.recordPresent(verdict.offer.peerId, this.#clock.now())
        this.#components.onOfferVerdict?.(verdict)
      }
    }, {
      maxOfferLifetimeMs: o.maxOfferLifetimeMs ?? DEFAULT_MAX_OFFER_LIFETIME_MS,
      maxClockSkewMs: o.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
      maxOffers: o.maxOffers ?? DEFAULT_MAX_OFFERS
    })
    this.#intake.start()
    this.#bookService = new BookService({ node, book: this.book, clock: this.#clock, logger, records: this.records }, {
      rateLimit: o.bookRateLimit ?? DEFAULT_BOOK_RATE_LIMIT
    })
    await this.#bookService.start()
    const proposalTimeoutMs = o.proposalTimeoutMs ?? DEFAULT_PROPOSAL_TIMEOUT_MS
    const proposer = new Proposer({ node, records: this.records, latency: this.latency, clock: this.#clock, logger }, { proposalTimeoutMs })
    this.#orders = new OrderService({
      node, book: this.book, records: this.records, latency: this.latency, proposer, clock: this.#clock, logger
    }, {
      maxProposals: o.maxProposals ?? DEFAULT_MAX_PROPOSALS,
      proposalTimeoutMs,
      maxConcurrentOrders: o.maxConcurrentOrders ?? DEFAULT_MAX_CONCURRENT_ORDERS,
      maxRememberedOrders: o.maxRememberedOrders ?? DEFAULT_MAX_REMEMBERED_ORDERS,
      tokenDecimals: o.tokenDecimals ?? DEFAULT_TOKEN_DECIMALS,
      rateLimit: o.orderRateLimit ?? DEFAULT_ORDER_RATE_LIMIT
    })
    await this.#orders.start()
    this.#pruneTask.start()
    this.#log.info({ peerId: node.peerId.toString(), addresses: node.getMultiaddrs().map(String) }, 'matcher started')
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#orders?.stop()
    await this.#bookService?.stop()
    await this.#pruneTask.stop()
    this.#intake?.stop()
    this.#revocations?.stop()
    this.#orders = null
    this.#bookService = null
    this.#intake = null
    if (this.#ownsNode && this.#node != null) {
      await this.#node.stop()
      this.#node = null
    }
    this.#log.info('matcher stopped')
  }

  prune (): void {
    const now = this.#clock.now()
    const gone = this.book.prune(now)
    for (const peerId of gone) {
      this.latency.delete(peerId)
      // Its offer expired without a newer one: the provider went away (kept, unlike its latency).
      this.records.recordDeparture(peerId, now)
    }
    this.#orders?.prune(now)
    if (gone.length > 0) this.#log.debug({ count: gone.length }, 'expired offers pruned')
  }

  /** Refreshes the latency of a few providers in the book we are already connected to. */
  async #pingSome (signal: AbortSignal): Promise<void> {
    const node = this.#node
    if (node == null) return
    let left = this.#options.pingsPerTick ?? DEFAULT_PINGS_PER_TICK
    for (const connection of node.getConnections()) {
      if (left <= 0 || signal.aborted) break
      const peerId = connection.remotePeer
      if (!this.book.has(peerId.toString())) continue
      left--
      try {
        const ms = await node.services.ping.ping(peerId, { signal: within(2_000, signal) })
        this.latency.record(peerId.toString(), ms)
      } catch {
        // a failed ping says nothing the proposal timeout will not
      }
    }
  }
}
