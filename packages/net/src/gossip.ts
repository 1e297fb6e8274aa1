import { TopicValidatorResult } from '@libp2p/gossipsub'
import { DEFAULT_GOSSIP_MAX_MESSAGE_BYTES } from './constants.js'
import { PublishError } from './errors.js'
import { PeerRateLimiter, type RateLimitOptions } from './rate-limiter.js'
import type { GossipSub, Message, PublishResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'

/** The part of a node `publish()` needs. */
export interface GossipHost {
  services: { pubsub: GossipSub }
}

const limits = new WeakMap<object, number>()

/** Records the payload cap a node was built with; `createNode` calls it. */
export function setGossipMaxMessageBytes (node: GossipHost, maxMessageBytes: number): void {
  limits.set(node, maxMessageBytes)
}

/** The payload cap of `node` (what `createNode` configured, else the default). */
export function gossipMaxMessageBytes (node: GossipHost): number {
  return limits.get(node) ?? DEFAULT_GOSSIP_MAX_MESSAGE_BYTES
}

export interface PublishOptions {
  /** Overrides the node's cap for this call (it can only be lowered usefully: peers drop bigger RPCs). */
  maxMessageBytes?: number
}

/**
 * Publishes `data` on `topic`. Gossipsub drops a message over the receivers' size cap without telling
 * the sender, so the cap is checked here first. Throws `PublishError` with a code instead of gossipsub's
 * untyped errors.
 */
export async function publish (node: GossipHost, topic: string, data: Uint8Array, options: PublishOptions = {}): Promise<PublishResult> {
  const max = options.maxMessageBytes ?? gossipMaxMessageBytes(node)
  if (data.byteLength > max) {
    throw new PublishError('TOO_LARGE', `gossip message of ${data.byteLength} bytes exceeds the limit of ${max}`)
  }
  try {
    return await node.services.pubsub.publish(topic, data)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (message.includes('NoPeersSubscribedToTopic')) throw new PublishError('NO_PEERS', `no peers subscribed to ${topic}`, { cause: err })
    if (message.includes('Duplicate')) throw new PublishError('DUPLICATE', 'message already published', { cause: err })
    if (message.includes('Uninitialized')) throw new PublishError('NOT_STARTED', 'gossipsub is not started', { cause: err })
    throw new PublishError('FAILED', `publishing on ${topic} failed`, { cause: err })
  }
}

/** A relaying node's verdict on a gossip message: deliver and relay, drop and penalise the sender, or drop. */
export type GossipJudgement = 'accept' | 'reject' | 'ignore'

const RESULTS: Record<GossipJudgement, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  reject: TopicValidatorResult.Reject,
  ignore: TopicValidatorResult.Ignore
}

export interface ValidateTopicOptions {
  /**
   * Messages one author may have delivered or relayed per window; beyond it they are ignored before
   * `judge` runs (no penalty for the peer that passed them on: it may be an honest relay). The author
   * is the gossip message's signer, which gossipsub has verified, so it cannot be borrowed.
   */
  perAuthor?: RateLimitOptions
  /** Told of each message ignored by `perAuthor` (its author, and the peer that passed it on). */
  onRateLimited?: (author: string, from: string) => void
}

/**
 * What `judge` gets: the payload, its author (the signer of the gossip message; null if unsigned)
 * and the peer that passed it on to this node.
 */
export type GossipJudge = (data: Uint8Array, author: string | null, from: string) => GossipJudgement

/**
 * Judges every message on `topic` before this node delivers or relays it: a node that relays gossip
 * unchecked spreads whatever a hostile peer sends, and is penalised for it by the peers it relays to.
 * `reject` also penalises the peer that passed the message on. A judge that throws counts as
 * `ignore`. This is the one way gossip is judged in gpumesh; returns a function that removes the judge.
 */
export function validateTopic (node: GossipHost, topic: string, judge: GossipJudge, options: ValidateTopicOptions = {}): () => void {
  const limiter = options.perAuthor == null ? null : new PeerRateLimiter(options.perAuthor)
  const validator = (peer: PeerId, message: Message): TopicValidatorResult => {
    const author = message.type === 'signed' ? message.from.toString() : null
    if (limiter != null && author != null && !limiter.consume(author)) {
      options.onRateLimited?.(author, peer.toString())
      return TopicValidatorResult.Ignore
    }
    try {
      return RESULTS[judge(message.data, author, peer.toString())]
    } catch {
      return TopicValidatorResult.Ignore
    }
  }
  const validators = node.services.pubsub.topicValidators
  validators.set(topic, validator)
  return () => {
    if (validators.get(topic) === validator) validators.delete(topic)
  }
}
