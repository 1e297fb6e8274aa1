/**
 * Offer intake: every message on the offers topic is judged (net's `validateTopic`, the one gossip
 * validation every node uses) before it can enter the book or be forwarded: `reject` (forged,
 * malformed, or published by someone other than the provider) penalises the peer that sent it to
 * us; `ignore` (expired, older than what the book holds, implausible times, over the per-author rate)
 * drops it without penalty; `accept` forwards it.
 */
import { validateTopic, type GossipHost } from '@gpumesh/net'
import { OFFERS_TOPIC, OFFER_GOSSIP_RATE_LIMIT, judgeOfferGossip, type OfferGossipReason, type OfferJudgement } from '@gpumesh/protocol'
import type { Offer } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import type { Clock } from '@gpumesh/protocol'
import type { OrderBook } from './order-book.js'

export type { OfferJudgement }

/** Why an offer was accepted, rejected or ignored: the gossip judgement, then what the book did. */
export type OfferVerdictReason = Exclude<OfferGossipReason, 'VALID'> | 'ADDED' | 'REPLACED' | 'STALE' | 'BOOK_FULL' | 'RATE_LIMITED' | 'REVOKED'

export interface OfferVerdict {
  judgement: OfferJudgement
  reason: OfferVerdictReason
  /** The gossip author (the peer that signed the gossip message), when known. */
  author: string | null
  offer: Offer | null
}

export interface OfferIntakeOptions {
  maxOfferLifetimeMs: number
  maxClockSkewMs: number
  maxOffers: number
}

export interface OfferIntakeComponents {
  node: GossipHost
  book: OrderBook
  clock: Clock
  logger: Logger
  /** Told of every verdict (tests, metrics). */
  onVerdict?: (verdict: OfferVerdict) => void
  /** True for an offer whose fleet membership its operator revoked: it is not taken into the book. */
  isRevoked?: (offer: Offer) => boolean
}

/**
 * The author-independent part of the judgement: decode, expiry, signatures, plausibility — the same
 * judgement every relaying node makes (`judgeOfferGossip`), with an accepted offer called ADDED until
 * the book says more.
 */
export function judgeOffer (data: Uint8Array, author: string | null, now: number, options: OfferIntakeOptions): OfferVerdict {
  const v = judgeOfferGossip(data, author, now, options)
  return { ...v, reason: v.reason === 'VALID' ? 'ADDED' : v.reason }
}

export class OfferIntake {
  readonly #components: OfferIntakeComponents
  readonly #options: OfferIntakeOptions
  readonly #log: Logger
  #stopJudging: (() => void) | null = null

  constructor (components: OfferIntakeComponents, options: OfferIntakeOptions) {
    this.#components = components
    this.#options = options
    this.#log = components.logger.child({ module: 'offer-intake' })
  }

  start (): void {
    if (this.#stopJudging != null) return
    // Offers per author beyond OFFER_GOSSIP_RATE_LIMIT are ignored before their signatures are checked.
    this.#stopJudging = validateTopic(this.#components.node, OFFERS_TOPIC, (data, author, from) => this.#judge(data, author, from), {
      perAuthor: OFFER_GOSSIP_RATE_LIMIT,
      onRateLimited: (author, from) => { this.#report({ judgement: 'ignore', reason: 'RATE_LIMITED', author, offer: null }, from) }
    })
    this.#components.node.services.pubsub.subscribe(OFFERS_TOPIC)
  }

  stop (): void {
    if (this.#stopJudging == null) return
    this.#stopJudging()
    this.#stopJudging = null
    try {
      this.#components.node.services.pubsub.unsubscribe(OFFERS_TOPIC)
    } catch (err) {
      this.#log.debug({ err }, 'unsubscribe failed (node already stopping)')
    }
  }

  #judge (data: Uint8Array, author: string | null, from: string): OfferJudgement {
    const { book, clock } = this.#components
    const now = clock.now()
    let verdict: OfferVerdict
    try {
      verdict = judgeOffer(data, author, now, this.#options)
      if (verdict.judgement === 'accept' && verdict.offer != null) {
        const offer = verdict.offer
        if (this.#components.isRevoked?.(offer) === true) {
          // Relays that have not seen the revocation pass the offer on honestly: no penalty.
          verdict = { ...verdict, judgement: 'ignore', reason: 'REVOKED' }
        } else if (!book.has(offer.peerId) && book.size >= this.#options.maxOffers) {
          verdict = { ...verdict, judgement: 'ignore', reason: 'BOOK_FULL' }
        } else {
          const result = book.upsert(offer, now)
          if (result === 'stale') verdict = { ...verdict, judgement: 'ignore', reason: 'STALE' }
          else verdict = { ...verdict, reason: result === 'added' ? 'ADDED' : 'REPLACED' }
        }
      }
    } catch (err) {
      this.#log.error({ err }, 'judging an offer failed')
      verdict = { judgement: 'ignore', reason: 'MALFORMED', author: null, offer: null }
    }
    this.#report(verdict, from)
    return verdict.judgement
  }

  #report (verdict: OfferVerdict, from: string): void {
    const level = verdict.judgement === 'reject' ? 'warn' : 'debug'
    this.#log[level]({ author: verdict.author, from, judgement: verdict.judgement, reason: verdict.reason }, 'offer judged')
    this.#components.onVerdict?.(verdict)
  }
}
