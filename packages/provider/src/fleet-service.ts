/**
 * The member's side of the fleet protocol (FLEET_PROTOCOL): its operator — and only its operator —
 * asks for this node's status or its newest unredeemed vouchers. A request is refused unless it is
 * signed by the operator of this node's membership, names the connection's peer as its asker and this
 * node as its member, is valid now (a short validity) and was not seen before (nonces are remembered
 * until they expire). Requests are size-capped and rate-limited per peer by `handle`.
 *
 * This file parses, authorises and answers; what the answers hold comes from the two functions the
 * composition root passes in.
 */
import { HandlerError, handle, type GpumeshNode, type RateLimitOptions } from '@gpumesh/net'
import {
  FLEET_MAX_BYTES, FLEET_PROTOCOL, checkFleetRequest, decodeFleetRequest, encodeFleetStatus, encodeFleetVouchers,
  isProtocolError, marketDomain
} from '@gpumesh/protocol'
import type { FleetMembership, FleetStatus, FleetVouchers } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import type { Clock } from '@gpumesh/protocol'

/** Requests per peer and window: a `fleet status` every few seconds is plenty. */
export const FLEET_RATE_LIMIT: RateLimitOptions = Object.freeze({ points: 30, durationMs: 60_000 })
/** Remembered nonces at most (each is forgotten when its request expires). */
const MAX_REMEMBERED_NONCES = 4096

export interface FleetServiceComponents {
  node: GpumeshNode
  clock: Clock
  logger: Logger
  /** This node's membership (checked at start); requests are refused without one. */
  membership: () => FleetMembership | null
  chainId: bigint
  status: () => FleetStatus
  vouchers: () => FleetVouchers
}

export class FleetService {
  readonly #c: FleetServiceComponents
  readonly #log: Logger
  readonly #nonces = new Map<string, number>()
  #started = false

  constructor (components: FleetServiceComponents) {
    this.#c = components
    this.#log = components.logger
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await handle(this.#c.node, FLEET_PROTOCOL, async (bytes, context) => this.#answer(bytes, context.peerId.toString()), {
      maxRequestBytes: FLEET_MAX_BYTES.request,
      maxResponseBytes: FLEET_MAX_BYTES.vouchers,
      rateLimit: FLEET_RATE_LIMIT
    })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#c.node.unhandle(FLEET_PROTOCOL).catch(() => {})
  }

  #answer (bytes: Uint8Array, asker: string): Uint8Array {
    const membership = this.#c.membership()
    if (membership == null) throw new HandlerError('NOT_A_MEMBER', 'this node belongs to no fleet')
    let request
    try {
      request = decodeFleetRequest(bytes)
    } catch (err) {
      if (isProtocolError(err)) throw new HandlerError(err.code, err.message.slice(0, 256), { cause: err })
      throw err
    }
    const now = this.#c.clock.now()
    const refusal = checkFleetRequest(request, {
      asker,
      member: this.#c.node.peerId.toString(),
      operator: membership.operator,
      domain: marketDomain(this.#c.chainId),
      now
    })
    if (refusal !== null) {
      this.#log.warn({ asker, refusal }, 'fleet request refused')
      throw new HandlerError(refusal, `fleet request refused: ${refusal}`)
    }
    this.#forgetExpired(now)
    if (this.#nonces.has(request.nonce)) throw new HandlerError('REPLAYED', 'fleet request refused: REPLAYED')
    if (this.#nonces.size >= MAX_REMEMBERED_NONCES) throw new HandlerError('BUSY', 'too many fleet requests in flight; try again shortly')
    this.#nonces.set(request.nonce, request.expiresAt)
    return request.kind === 'status' ? encodeFleetStatus(this.#c.status()) : encodeFleetVouchers(this.#c.vouchers())
  }

  #forgetExpired (now: number): void {
    for (const [nonce, expiresAt] of this.#nonces) if (expiresAt <= now) this.#nonces.delete(nonce)
  }
}
