import { RepeatingTask, publish, type GossipHost } from '@gpumesh/net'
import { MIN_OFFER_PUBLISH_GAP_MS, OFFERS_TOPIC, encodeOffer, jsonReplacer, marketDomain, signOffer } from '@gpumesh/protocol'
import type { Ledger } from '@gpumesh/ledger'
import type { FleetMembership, Offer, PaymentKey, PeerBinding } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import { NEW_PEER_REPUBLISH_GAP_MS, OFFER_SEQUENCE_KEY, REPUBLISH_DEBOUNCE_MS } from './constants.js'
import { buildOffer, type RunnerProblems } from './offer-builder.js'
import type { Clock } from '@gpumesh/protocol'
import type { Inventory } from './inventory.js'
import type { ProviderConfig } from './config.js'

export interface OfferPublisherComponents {
  node: GossipHost
  ledger: Ledger
  inventory: Inventory
  paymentKey: PaymentKey
  peerId: string
  binding: PeerBinding
  /** This node's fleet membership, carried in offers while it holds. */
  fleet?: FleetMembership | null
  /** The addresses to advertise, read at each publication. */
  addresses: () => string[]
  clock: Clock
  logger: Logger
  /** Told about failures worth showing in `status`. */
  onError?: (message: string) => void
  /** What the job runner's checks found, read at each publication. */
  runnerProblems?: () => RunnerProblems | null
}

/** What the publisher did last, for `status`. */
export interface OfferState {
  /** The offer last published, or null. */
  offer: Offer | null
  publishedAt: number | null
  /** Why nothing is published now (nothing healthy to sell, no price...), or null when an offer is out. */
  reason: string | null
  /** Classes or GPUs left out of the offer and why. */
  notes: string[]
  bytes: number | null
}

/**
 * Publishes the signed offer on `/gpumesh/offers/1`: at start, every `offers.republishSec` (before the
 * `offers.ttlSec` expiry), soon after `requestPublish()` (capacity changed) and soon after a peer
 * subscribes to the topic (so a matcher that just started has the offer in seconds). Publications are
 * serialised; the sequence is persisted before each so it increases across restarts
 * (`max(last + 1, now)`). The encoded offer is size-checked (protocol cap, then gossip cap) before it
 * leaves.
 */
export class OfferPublisher {
  readonly #config: ProviderConfig
  readonly #c: OfferPublisherComponents
  readonly #task: RepeatingTask
  #chain: Promise<void> = Promise.resolve()
  #debounce: ReturnType<typeof setTimeout> | null = null
  #debounceAt = 0
  #lastPublishedMono = Number.NEGATIVE_INFINITY
  #started = false
  #state: OfferState = { offer: null, publishedAt: null, reason: 'not published yet', notes: [], bytes: null }
  #lastReasonLogged: string | null = null

  constructor (config: ProviderConfig, components: OfferPublisherComponents) {
    this.#config = config
    this.#c = components
    this.#task = new RepeatingTask({
      name: 'offer-republish',
      intervalMs: config.offers.republishSec * 1000,
      runAtStart: true,
      logger: components.logger
    }, async () => { await this.publishNow() })
  }

  get state (): OfferState {
    return this.#state
  }

  start (): void {
    if (this.#started) return
    this.#started = true
    this.#c.node.services.pubsub.addEventListener('subscription-change', this.#onSubscriptionChange)
    this.#task.start()
  }

  /**
   * A peer (a matcher that just started, a provider that just joined) subscribed to the offers topic:
   * publish soon so it need not wait for the next round. At most one such publication per
   * `NEW_PEER_REPUBLISH_GAP_MS`, however many peers arrive.
   */
  readonly #onSubscriptionChange = (evt: CustomEvent<{ subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (!this.#started) return
    if (!evt.detail.subscriptions.some((s) => s.topic === OFFERS_TOPIC && s.subscribe)) return
    const since = this.#c.clock.now() - (this.#state.publishedAt ?? Number.NEGATIVE_INFINITY)
    this.#schedule(Math.max(REPUBLISH_DEBOUNCE_MS, NEW_PEER_REPUBLISH_GAP_MS - since))
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    this.#c.node.services.pubsub.removeEventListener('subscription-change', this.#onSubscriptionChange)
    if (this.#debounce != null) clearTimeout(this.#debounce)
    this.#debounce = null
    await this.#task.stop()
    await this.#chain
  }

  /** Capacity changed: publish soon (a burst of changes makes one offer). */
  requestPublish (): void {
    if (!this.#started) return
    this.#schedule(REPUBLISH_DEBOUNCE_MS)
  }

  /**
   * Publishes in `delayMs` — but never sooner than MIN_OFFER_PUBLISH_GAP_MS after the last
   * publication, so a burst of changes makes one offer a second, within what relays accept — unless a
   * publication is already due no later than that.
   */
  #schedule (delayMs: number): void {
    const now = this.#c.clock.monotonicNow()
    const at = Math.max(now + delayMs, this.#lastPublishedMono + MIN_OFFER_PUBLISH_GAP_MS)
    if (this.#debounce != null) {
      if (this.#debounceAt <= at) return
      clearTimeout(this.#debounce)
    }
    this.#debounceAt = at
    this.#debounce = setTimeout(() => {
      this.#debounce = null
      this.publishNow().catch(() => {})
    }, at - now)
  }

  /** Builds, signs and publishes an offer now (after any publication in progress). */
  async publishNow (): Promise<OfferState> {
    const run = this.#chain.then(async () => { await this.#publishOnce() })
    this.#chain = run.catch(() => {})
    await run
    return this.#state
  }

  async #publishOnce (): Promise<void> {
    if (!this.#started) return
    const { ledger, inventory, clock, logger } = this.#c
    const now = clock.now()
    const last = Number(ledger.getKv(OFFER_SEQUENCE_KEY) ?? '0')
    const sequence = Math.max((Number.isSafeInteger(last) ? last : 0) + 1, now)
    const built = buildOffer({
      config: this.#config,
      gpus: inventory.gpus(),
      host: inventory.host,
      peerId: this.#c.peerId,
      binding: this.#c.binding,
      addresses: this.#c.addresses(),
      fleet: this.#c.fleet ?? null,
      runnerProblems: this.#c.runnerProblems?.() ?? null,
      sequence,
      now
    })
    if (built.offer == null) {
      this.#state = { offer: null, publishedAt: null, reason: built.reason, notes: built.notes, bytes: null }
      if (this.#lastReasonLogged !== built.reason) {
        logger.warn({ reason: built.reason, notes: built.notes }, 'no offer published')
        this.#lastReasonLogged = built.reason
      }
      return
    }
    this.#lastReasonLogged = null
    const domain = marketDomain(built.offer.chainId)
    const offer: Offer = { ...built.offer, signature: signOffer(built.offer, this.#c.paymentKey, domain) }
    let bytes: Uint8Array
    try {
      bytes = encodeOffer(offer) // validates and checks the protocol's 64 KiB cap
    } catch (err) {
      this.#fail(`offer not published: ${(err as Error).message}`, err)
      return
    }
    ledger.setKv(OFFER_SEQUENCE_KEY, String(sequence))
    this.#lastPublishedMono = this.#c.clock.monotonicNow()
    try {
      await publish(this.#c.node, OFFERS_TOPIC, bytes) // checks the gossip cap first
    } catch (err) {
      this.#fail(`offer ${sequence} not published: ${(err as Error).message}`, err)
      return
    }
    const gpusFree = offer.gpus.reduce((n, g) => n + g.countFree, 0)
    ledger.recordOffer({ sequence, publishedAt: now, expiresAt: offer.expiresAt, body: JSON.stringify(offer, jsonReplacer), gpusFree })
    this.#state = { offer, publishedAt: now, reason: null, notes: built.notes, bytes: bytes.byteLength }
    logger.info({
      sequence,
      gpus: offer.gpus.map((g) => ({ class: g.class, free: g.countFree, total: g.countTotal, price: g.pricePerGpuHour.toString(), simulated: g.simulated })),
      bytes: bytes.byteLength,
      expiresAt: offer.expiresAt
    }, 'offer published')
    for (const note of built.notes) logger.warn({ note }, 'left out of the offer')
  }

  #fail (message: string, err: unknown): void {
    this.#c.logger.error({ err }, message)
    this.#state = { ...this.#state, reason: message }
    this.#c.onError?.(message)
  }
}
