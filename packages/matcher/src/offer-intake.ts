/**
 * Offer intake: every message on the offers topic is judged before it can enter the book or be
 * forwarded. With gossipsub's `asyncValidation`, nothing is relayed until the judgement is reported:
 * `reject` (forged, malformed, or published by someone other than the provider) penalises the peer
 * that sent it to us; `ignore` (expired, older than what the book holds, implausible times) drops it
 * without penalty; `accept` forwards it.
 */
import { PeerRateLimiter } from '@gpumesh/net'
import { OFFERS_TOPIC, OFFER_GOSSIP_RATE_LIMIT, judgeOfferGossip, type OfferGossipReason, type OfferJudgement } from '@gpumesh/protocol'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { GossipSub, GossipsubMessage } from '@libp2p/gossipsub'
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

/**
 * Gossipsub as it is at run time: the public interface omits the async-validation report and the
 * options, which the class has.
 */
export type ValidatingPubsub = GossipSub & {
  reportMessageValidationResult: (msgId: string, propagationSource: string, acceptance: TopicValidatorResult) => void
  opts?: { asyncValidation?: boolean }
}

const ACCEPTANCE: Record<OfferJudgement, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  reject: TopicValidatorResult.Reject,
  ignore: TopicValidatorResult.Ignore
}

export interface OfferIntakeComponents {
  pubsub: ValidatingPubsub
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
  /** Offers per author beyond OFFER_GOSSIP_RATE_LIMIT are ignored before their signatures are checked. */
  readonly #perAuthor = new PeerRateLimiter(OFFER_GOSSIP_RATE_LIMIT)
  #started = false
  readonly #onMessage = (evt: CustomEvent<GossipsubMessage>): void => { this.#handle(evt.detail) }

  constructor (components: OfferIntakeComponents, options: OfferIntakeOptions) {
    this.#components = components
    this.#options = options
    this.#log = components.logger.child({ module: 'offer-intake' })
  }

  start (): void {
    if (this.#started) return
    this.#started = true
    this.#components.pubsub.addEventListener('gossipsub:message', this.#onMessage)
    this.#components.pubsub.subscribe(OFFERS_TOPIC)
  }

  stop (): void {
    if (!this.#started) return
    this.#started = false
    this.#components.pubsub.removeEventListener('gossipsub:message', this.#onMessage)
    try {
      this.#components.pubsub.unsubscribe(OFFERS_TOPIC)
    } catch (err) {
      this.#log.debug({ err }, 'unsubscribe failed (node already stopping)')
    }
  }

  #handle (event: GossipsubMessage): void {
    const { msg, msgId, propagationSource } = event
    if (msg.topic !== OFFERS_TOPIC) return
    const { book, clock, pubsub } = this.#components
    const now = clock.now()
    let verdict: OfferVerdict
    try {
      const author = msg.type === 'signed' ? msg.from.toString() : null
      verdict = author != null && !this.#perAuthor.consume(author)
        ? { judgement: 'ignore', reason: 'RATE_LIMITED', author, offer: null }
        : judgeOffer(msg.data, author, now, this.#options)
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
    pubsub.reportMessageValidationResult(msgId, propagationSource.toString(), ACCEPTANCE[verdict.judgement])
    const level = verdict.judgement === 'reject' ? 'warn' : 'debug'
    this.#log[level]({ author: verdict.author, from: propagationSource.toString(), judgement: verdict.judgement, reason: verdict.reason }, 'offer judged')
    this.#components.onVerdict?.(verdict)
  }
}
