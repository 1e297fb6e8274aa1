/**
 * Fleet revocations kept by the matcher. An operator's signed `FleetRevocation` arrives on
 * FLEET_REVOCATIONS_TOPIC; once judged valid (signed by the operator it names), the revoked node's
 * offer leaves the book at once, and every later offer of that node carrying a membership of that
 * operator (on that chain) is refused — also after the node restarts with its old membership file.
 *
 * Revocations are kept in memory, bounded; the operator re-publishes them (`gpumesh fleet revoke`,
 * and every `gpumesh fleet status` run), so a matcher that restarted learns them again.
 */
import { validateTopic, type GossipHost, type GossipJudgement } from '@gpumesh/net'
import { FLEET_REVOCATIONS_TOPIC, judgeFleetRevocation } from '@gpumesh/protocol'
import type { FleetRevocation, FleetRevocationVerdict, Offer } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import type { Clock } from '@gpumesh/protocol'
import type { OrderBook } from './order-book.js'

/** Revocations kept at most; beyond it new ones are still applied to the book but the oldest is forgotten. */
export const MAX_FLEET_REVOCATIONS = 100_000

export interface FleetRevocationsComponents {
  node: GossipHost
  book: OrderBook
  clock: Clock
  logger: Logger
  /** Told of every judged revocation (tests). */
  onVerdict?: (verdict: FleetRevocationVerdict) => void
  /** Told of each provider whose offer a revocation removed from the book. */
  onRemoved?: (peerId: string) => void
}

const keyOf = (operator: string, peerId: string, chainId: bigint): string => `${chainId}:${operator.toLowerCase()}:${peerId}`

export class FleetRevocations {
  readonly #c: FleetRevocationsComponents
  readonly #log: Logger
  readonly #kept = new Map<string, FleetRevocation>()
  #stopJudging: (() => void) | null = null

  constructor (components: FleetRevocationsComponents) {
    this.#c = components
    this.#log = components.logger.child({ module: 'fleet-revocations' })
  }

  get size (): number { return this.#kept.size }

  start (): void {
    if (this.#stopJudging != null) return
    this.#stopJudging = validateTopic(this.#c.node, FLEET_REVOCATIONS_TOPIC, (data, _author, from) => this.#judge(data, from))
    this.#c.node.services.pubsub.subscribe(FLEET_REVOCATIONS_TOPIC)
  }

  stop (): void {
    if (this.#stopJudging == null) return
    this.#stopJudging()
    this.#stopJudging = null
    try {
      this.#c.node.services.pubsub.unsubscribe(FLEET_REVOCATIONS_TOPIC)
    } catch (err) {
      this.#log.debug({ err }, 'unsubscribe failed (node already stopping)')
    }
  }

  /** True when the offer's fleet membership was revoked by its operator. */
  isRevoked (offer: Offer): boolean {
    return offer.fleet != null && this.#kept.has(keyOf(offer.fleet.operator, offer.peerId, offer.chainId))
  }

  /** Keeps a verified revocation and drops the offer it concerns from the book; true when new. */
  apply (revocation: FleetRevocation): boolean {
    const key = keyOf(revocation.operator, revocation.peerId, revocation.chainId)
    const isNew = !this.#kept.has(key)
    if (isNew) {
      if (this.#kept.size >= MAX_FLEET_REVOCATIONS) {
        const oldest = this.#kept.keys().next().value
        if (oldest !== undefined) this.#kept.delete(oldest)
      }
      this.#kept.set(key, revocation)
    }
    const held = this.#c.book.get(revocation.peerId)
    if (held != null && this.isRevoked(held)) {
      this.#c.book.remove(revocation.peerId)
      this.#log.info({ peerId: revocation.peerId, operator: revocation.operator }, 'fleet member revoked: its offer left the book')
      this.#c.onRemoved?.(revocation.peerId)
    }
    return isNew
  }

  #judge (data: Uint8Array, from: string): GossipJudgement {
    let verdict: FleetRevocationVerdict
    try {
      verdict = judgeFleetRevocation(data, this.#c.clock.now())
      if (verdict.judgement === 'accept' && verdict.revocation != null) {
        // A revocation already kept is not relayed again (the operator's re-publications die out here).
        if (!this.apply(verdict.revocation)) verdict = { ...verdict, judgement: 'ignore' }
      }
    } catch (err) {
      this.#log.error({ err }, 'judging a fleet revocation failed')
      verdict = { judgement: 'ignore', reason: 'MALFORMED', revocation: null }
    }
    this.#log[verdict.judgement === 'reject' ? 'warn' : 'debug']({ from, reason: verdict.reason, judgement: verdict.judgement }, 'fleet revocation judged')
    this.#c.onVerdict?.(verdict)
    return verdict.judgement
  }
}
