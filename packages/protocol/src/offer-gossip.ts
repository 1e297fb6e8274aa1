import { decodeOffer } from './codec.js'
import { marketDomain } from './eip712.js'
import { isProtocolError } from './errors.js'
import type { Offer } from './messages.js'
import { verifyOffer } from './signing.js'

/** What to do with a gossiped offer: relay it, drop it and penalise the sender, or drop it quietly. */
export type OfferJudgement = 'accept' | 'reject' | 'ignore'

/** Why a gossiped offer was judged so. */
export type OfferGossipReason =
  | 'VALID'
  | 'NOT_SIGNED' | 'MALFORMED' | 'INVALID_FIELD' | 'TOO_LARGE' | 'BAD_SIGNATURE' | 'NOT_AUTHOR'
  | 'EXPIRED' | 'FROM_THE_FUTURE' | 'LIFETIME_TOO_LONG'

export interface OfferGossipVerdict {
  judgement: OfferJudgement
  reason: OfferGossipReason
  /** The gossip author (the peer that signed the gossip message), when known. */
  author: string | null
  offer: Offer | null
}

export interface OfferGossipOptions {
  /** Longest time from now to an offer's expiry that is believed. Default 24 h. */
  maxOfferLifetimeMs?: number
  /** How far in the future an offer's issue time may be. Default 60 s. */
  maxClockSkewMs?: number
}

export const DEFAULT_MAX_OFFER_LIFETIME_MS = 24 * 60 * 60 * 1000
export const DEFAULT_MAX_CLOCK_SKEW_MS = 60_000

/**
 * Offers one provider may publish per window before relays ignore the rest. An honest provider
 * publishes every ~30 s and at most once a second on capacity changes; a peer sending faster only
 * costs every relay a signature check per message.
 */
export const OFFER_GOSSIP_RATE_LIMIT = Object.freeze({ points: 20, durationMs: 10_000 })
/** Least time between two publications of one provider's offer (see OFFER_GOSSIP_RATE_LIMIT). */
export const MIN_OFFER_PUBLISH_GAP_MS = 1_000

/**
 * Judges an offer received on the offers topic, as every node that relays gossip should before it
 * passes it on: decode and validate (size, schema, expiry), only the provider itself may publish its
 * offer (`author`, the gossip message's signer, must be `offer.peerId`), the peer-binding and fleet
 * proofs and the offer signature must verify, and its times must be plausible. Forged or malformed
 * offers are `reject` (gossipsub penalises whoever sent them); late or implausible ones `ignore`.
 */
export function judgeOfferGossip (data: Uint8Array, author: string | null, now: number, options: OfferGossipOptions = {}): OfferGossipVerdict {
  const verdict = (judgement: OfferJudgement, reason: OfferGossipReason, offer: Offer | null = null): OfferGossipVerdict =>
    ({ judgement, reason, author, offer })
  if (author == null) return verdict('reject', 'NOT_SIGNED')
  let offer: Offer
  try {
    offer = decodeOffer(data, { now })
  } catch (err) {
    if (isProtocolError(err)) {
      // Late, not forged: gossip can take a while, and a clock can be a little off.
      if (err.code === 'EXPIRED') return verdict('ignore', 'EXPIRED')
      return verdict('reject', err.code === 'TOO_LARGE' ? 'TOO_LARGE' : err.code === 'MALFORMED' ? 'MALFORMED' : 'INVALID_FIELD')
    }
    throw err
  }
  // A relay keeps the author, a replay by someone else does not. The schema ties binding.peerId (and
  // fleet.peerId) to offer.peerId.
  if (offer.peerId !== author) return verdict('reject', 'NOT_AUTHOR', offer)
  try {
    // Binding proof by binding.payment, fleet proof by the operator, offer signed by binding.payment.
    verifyOffer(offer, marketDomain(offer.chainId))
  } catch (err) {
    if (isProtocolError(err)) return verdict('reject', 'BAD_SIGNATURE', offer)
    throw err
  }
  if (offer.issuedAt > now + (options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS)) return verdict('ignore', 'FROM_THE_FUTURE', offer)
  if (offer.expiresAt - now > (options.maxOfferLifetimeMs ?? DEFAULT_MAX_OFFER_LIFETIME_MS)) return verdict('ignore', 'LIFETIME_TOO_LONG', offer)
  return verdict('accept', 'VALID', offer)
}
