import { randomBytes } from 'node:crypto'
import { PeerRateLimiter, handle, type StreamHost } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, LIMITS, MAX_MESSAGE_BYTES, bytesToHex, decodeLeaseProposal, encodeLeaseDecision, isProtocolError,
  jsonReplacer, marketDomain, signLeaseTerms, verifyOrder
} from '@gpumesh/protocol'
import { NoCapacityError, ReplayError, type Ledger } from '@gpumesh/ledger'
import type { Address, Bytes32, FleetMembership, LeaseDecision, LeaseProposal, LeaseRejectCode, LeaseTerms, PaymentKey } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import {
  LEASE_HANDLER_TIMEOUT_MS, LEASE_MAX_INBOUND_STREAMS, LEASE_NET_RATE_LIMIT, PROPOSAL_RATE_MAX_PEERS, PROPOSAL_RATE_WINDOW_MS
} from './constants.js'
import { pricingPolicy, utilisation } from './offer-builder.js'
import { activeOperator } from './fleet.js'
import { askPrice } from './pricing.js'
import {
  checkConsistent, checkExpiry, checkMatcher, checkPrice, checkRenter, checkRequirements, fittingGpus, type Rejection
} from './lease-policy.js'
import type { Clock } from '@gpumesh/protocol'
import type { Inventory, InventoryGpu } from './inventory.js'
import { settlementEscrow, type ProviderConfig } from './config.js'
import { intervalCost, type EscrowGuard } from './escrow-guard.js'

export interface LeaseHandlerComponents {
  /** Absent when the handler is used without a network (`decide` only). */
  node?: StreamHost & { unhandle: (protocol: string) => Promise<void> }
  ledger: Ledger
  inventory: Inventory
  paymentKey: PaymentKey
  /** The payment address (checksummed). */
  provider: Address
  peerId: string
  /** Addresses put in the lease terms, read at each acceptance. */
  addresses: () => string[]
  clock: Clock
  logger: Logger
  /** This node's fleet membership (orders may ask for its operator); none by default. */
  fleet?: FleetMembership | null
  /** Checks renters' escrow before a lease is accepted (on-chain settlement); none off-chain. */
  escrowGuard?: EscrowGuard | null
  /**
   * Why the job runner cannot run jobs on this GPU (the docker engine down, its NVIDIA runtime
   * missing), or null: such GPUs are not leased, as they are not offered.
   */
  runnerProblem?: (gpu: InventoryGpu) => string | null
  onError?: (message: string) => void
}

export interface LeaseHandlerStats {
  accepted: number
  rejected: Partial<Record<LeaseRejectCode, number>>
}

/** A proposal that passed every check, ready to be reserved. */
interface Evaluated {
  proposal: LeaseProposal
  chosen: string[]
  /** Whether a chosen GPU is simulated (for the log line). */
  simulated: boolean
  now: number
}

/** Rejections worth keeping in the ledger: those of proposals whose order is genuinely signed. */
export const RECORDED_REJECTION_CODES: ReadonlySet<LeaseRejectCode> = new Set<LeaseRejectCode>([
  'EXPIRED', 'REPLAY', 'RENTER_BLOCKED', 'MATCHER_NOT_TRUSTED', 'PRICE_TOO_LOW', 'UNSUPPORTED_REQUIREMENTS',
  'NO_CAPACITY', 'TOO_MANY_LEASES', 'INSUFFICIENT_ESCROW'
])

/**
 * Answers lease proposals on `/gpumesh/lease/1.0.0` with a `LeaseDecision`. The whole decision is
 * synchronous (`decide`): decoding, checks, signature verification, the SQLite transaction that reserves
 * the GPUs and marks the order seen, and signing the terms all happen in one turn of the event loop,
 * so no two proposals interleave. See the README for the order of the checks.
 */
export class LeaseHandler {
  readonly #config: ProviderConfig
  readonly #c: LeaseHandlerComponents
  readonly #log: Logger
  readonly #proposalRate: PeerRateLimiter
  /** Order ids of every lease ever accepted: a fast REPLAY answer; the ledger's transaction is the truth. */
  readonly #acceptedOrders = new Set<string>()
  #accepting = false
  readonly stats: LeaseHandlerStats = { accepted: 0, rejected: {} }

  constructor (config: ProviderConfig, components: LeaseHandlerComponents) {
    this.#config = config
    this.#c = components
    this.#log = components.logger
    this.#proposalRate = new PeerRateLimiter({
      points: config.leases.proposalsPerMinutePerPeer, durationMs: PROPOSAL_RATE_WINDOW_MS, maxKeys: PROPOSAL_RATE_MAX_PEERS
    }, () => this.#c.clock.monotonicNow())
  }

  get accepting (): boolean {
    return this.#accepting
  }

  async start (): Promise<void> {
    if (this.#accepting) return
    this.#acceptedOrders.clear()
    for (const lease of this.#c.ledger.listLeases()) this.#acceptedOrders.add(lease.orderId)
    this.#accepting = true
    const node = this.#c.node
    if (node == null) return
    await handle(node, LEASE_PROTOCOL, async (request, ctx) => {
      return encodeLeaseDecision(await this.decideWithEscrow(request, ctx.peerId.toString(), { signal: ctx.signal }))
    }, {
      maxRequestBytes: MAX_MESSAGE_BYTES['lease-proposal'],
      maxResponseBytes: MAX_MESSAGE_BYTES['lease-decision'],
      maxInboundStreams: LEASE_MAX_INBOUND_STREAMS,
      timeoutMs: LEASE_HANDLER_TIMEOUT_MS,
      rateLimit: { ...LEASE_NET_RATE_LIMIT },
      force: true
    })
  }

  /** Stops taking leases: the protocol is unregistered and any proposal still arriving is refused. */
  async stop (): Promise<void> {
    if (!this.#accepting) return
    this.#accepting = false
    await this.#c.node?.unhandle(LEASE_PROTOCOL).catch(() => {})
  }

  /** Decides on one proposal (raw bytes as received) from `proposerPeerId`, without the escrow check. Never throws. */
  decide (request: Uint8Array, proposerPeerId: string): LeaseDecision {
    const evaluated = this.#evaluate(request, proposerPeerId, true)
    return 'decision' in evaluated ? evaluated.decision : this.#acceptOrReject(evaluated, proposerPeerId)
  }

  /**
   * Decides on one proposal, checking the renter's escrow first when this provider settles on chain.
   * The checks run before the chain is asked (a forged or unwanted proposal costs no RPC call) and
   * again after (capacity may have changed meanwhile); the reservation is one synchronous step after
   * the second run. Never throws.
   */
  async decideWithEscrow (request: Uint8Array, proposerPeerId: string, options: { signal?: AbortSignal } = {}): Promise<LeaseDecision> {
    const guard = this.#c.escrowGuard
    if (guard == null) return this.decide(request, proposerPeerId)
    const first = this.#evaluate(request, proposerPeerId, true)
    if ('decision' in first) return first.decision
    const { proposal } = first
    const order = proposal.order
    try {
      const nextInterval = intervalCost(proposal.pricePerGpuHour, order.requirements.gpuCount, this.#config.billing.intervalSec)
      const verdict = await guard.check(order.renter, order.token, nextInterval, options)
      if (!verdict.covered) return this.#reject({ code: 'INSUFFICIENT_ESCROW', message: verdict.message }, proposal, order.orderId, proposerPeerId)
    } catch (err) {
      this.#log.warn({ err, orderId: order.orderId }, 'could not read the renter\'s escrow')
      this.#c.onError?.(`escrow check for order ${order.orderId} failed: ${(err as Error)?.message ?? String(err)}`)
      return this.#reject({ code: 'INTERNAL', message: 'the provider could not read the escrow; the proposal may be sent again' }, null, order.orderId, proposerPeerId)
    }
    const second = this.#evaluate(request, proposerPeerId, false)
    return 'decision' in second ? second.decision : this.#acceptOrReject(second, proposerPeerId)
  }

  /** Every check of a proposal, in the README's order, short of reserving; `countRate` once per proposal. */
  #evaluate (request: Uint8Array, proposerPeerId: string, countRate: boolean): { decision: LeaseDecision } | Evaluated {
    let orderId: Bytes32 | null = null
    let proposal: LeaseProposal | null = null
    const decided = (decision: LeaseDecision): { decision: LeaseDecision } => ({ decision })
    try {
      const rejection = countRate ? this.#checkRate(proposerPeerId) : null
      if (rejection != null) return decided(this.#reject(rejection, null, null, proposerPeerId))
      if (!this.#accepting) return decided(this.#reject({ code: 'NO_CAPACITY', message: 'the provider is shutting down' }, null, null, proposerPeerId))
      try {
        proposal = decodeLeaseProposal(request) // size cap, then UTF-8, JSON, schema; no clock (EXPIRED comes later)
      } catch (err) {
        if (!isProtocolError(err)) throw err
        return decided(this.#reject({ code: 'MALFORMED', message: err.message }, null, null, proposerPeerId))
      }
      const { order } = proposal
      orderId = order.orderId
      const consistent = checkConsistent(proposal)
      if (consistent != null) return decided(this.#reject(consistent, proposal, orderId, proposerPeerId))
      try {
        verifyOrder(order, marketDomain(order.chainId))
      } catch (err) {
        if (!isProtocolError(err)) throw err
        return decided(this.#reject({ code: 'BAD_SIGNATURE', message: `order signature: ${err.message}` }, proposal, orderId, proposerPeerId))
      }
      const now = this.#c.clock.now()
      const first = checkExpiry(order, now) ??
        (this.#acceptedOrders.has(order.orderId) ? { code: 'REPLAY' as const, message: `order ${order.orderId} was seen before` } : null) ??
        checkRenter(order, this.#config) ??
        checkMatcher(proposerPeerId, order, this.#config)
      if (first != null) return decided(this.#reject(first, proposal, orderId, proposerPeerId))

      const gpus = this.#c.inventory.gpus()
      const floor = askPrice(proposal.gpuClass, pricingPolicy(this.#config), utilisation(gpus))
      const second = checkPrice(proposal, floor) ??
        checkRequirements(proposal, this.#config, gpus, floor != null, activeOperator(this.#c.fleet ?? null, now))
      if (second != null) return decided(this.#reject(second, proposal, orderId, proposerPeerId))

      const count = order.requirements.gpuCount
      const fitting = fittingGpus(proposal, gpus).filter((g) => g.state === 'free')
      const problems = fitting.map((g) => this.#c.runnerProblem?.(g) ?? null)
      const free = fitting.filter((_, i) => problems[i] === null)
      if (free.length < count) {
        const problem = problems.find((p) => p !== null)
        const why = problem == null ? '' : ` (${fitting.length - free.length} more cannot run jobs: ${problem})`
        return decided(this.#reject({ code: 'NO_CAPACITY', message: `${count} ${proposal.gpuClass} GPU(s) wanted, ${free.length} free${why}` }, proposal, orderId, proposerPeerId))
      }
      const active = this.#c.ledger.activeLeases().length
      if (active >= this.#config.leases.maxConcurrent) {
        return decided(this.#reject({ code: 'TOO_MANY_LEASES', message: `${active} leases active, leases.maxConcurrent is ${this.#config.leases.maxConcurrent}` }, proposal, orderId, proposerPeerId))
      }
      const chosen = free.slice(0, count)
      return { proposal, chosen: chosen.map((g) => g.uuid), simulated: chosen.some((g) => g.simulated), now }
    } catch (err) {
      return decided(this.#internal(err, proposal, orderId, proposerPeerId))
    }
  }

  #acceptOrReject (evaluated: Evaluated, proposerPeerId: string): LeaseDecision {
    const { proposal, chosen, simulated, now } = evaluated
    try {
      return this.#accept(proposal, chosen, simulated, proposerPeerId, now)
    } catch (err) {
      return this.#internal(err, proposal, proposal.order.orderId, proposerPeerId)
    }
  }

  #internal (err: unknown, proposal: LeaseProposal | null, orderId: Bytes32 | null, proposerPeerId: string): LeaseDecision {
    if (err instanceof ReplayError) return this.#reject({ code: 'REPLAY', message: `order ${orderId ?? ''} was seen before` }, proposal, orderId, proposerPeerId)
    if (err instanceof NoCapacityError) return this.#reject({ code: 'NO_CAPACITY', message: (err as Error).message }, proposal, orderId, proposerPeerId)
    this.#log.error({ err, orderId, peer: proposerPeerId }, 'lease proposal failed')
    this.#c.onError?.(`lease proposal ${orderId ?? '(undecoded)'} failed: ${(err as Error)?.message ?? String(err)}`)
    return this.#reject({ code: 'INTERNAL', message: 'internal error; the proposal may be sent again' }, null, orderId, proposerPeerId)
  }

  /** Reserves exactly `chosen` in one transaction with the signed terms; throws ReplayError/NoCapacityError. */
  #accept (proposal: LeaseProposal, chosen: string[], simulated: boolean, proposerPeerId: string, now: number): LeaseDecision {
    const { order } = proposal
    const config = this.#config
    const terms: LeaseTerms = {
      leaseId: bytesToHex(randomBytes(32)) as Bytes32,
      orderId: order.orderId,
      provider: this.#c.provider,
      providerPeerId: this.#c.peerId,
      renter: order.renter,
      renterPeerId: order.renterPeerId,
      token: order.token,
      chainId: order.chainId,
      escrow: settlementEscrow(config),
      pricePerGpuHour: proposal.pricePerGpuHour,
      gpus: chosen,
      gpuClass: proposal.gpuClass,
      durationSec: order.durationSec,
      billingIntervalSec: config.billing.intervalSec,
      paymentGraceSec: config.billing.paymentGraceSec,
      startDeadline: now + config.leases.startDeadlineSec * 1000,
      jobHash: order.jobHash,
      providerAddresses: this.#c.addresses().slice(0, LIMITS.addresses),
      acceptedAt: now
    }
    const signature = signLeaseTerms(terms, this.#c.paymentKey, marketDomain(order.chainId))
    const matcherPeerId = proposerPeerId === order.renterPeerId ? null : proposerPeerId
    const reserved = this.#c.ledger.reserveLease({
      leaseId: terms.leaseId,
      orderId: order.orderId,
      orderExpiresAt: order.expiresAt,
      renter: order.renter,
      renterPeerId: order.renterPeerId,
      matcherPeerId,
      provider: terms.provider,
      token: terms.token,
      chainId: terms.chainId,
      escrow: terms.escrow,
      pricePerGpuHour: terms.pricePerGpuHour,
      gpuClass: terms.gpuClass,
      gpuCount: chosen.length,
      durationSec: terms.durationSec,
      billingIntervalSec: terms.billingIntervalSec,
      paymentGraceSec: terms.paymentGraceSec,
      startDeadline: terms.startDeadline,
      jobHash: terms.jobHash,
      eligibleGpuUuids: chosen,
      terms: JSON.stringify({ terms, signature }, jsonReplacer),
      detail: { matcherPeerId, offerSequence: proposal.offerSequence }
    })
    this.#acceptedOrders.add(order.orderId)
    this.stats.accepted++
    this.#log.info({
      leaseId: terms.leaseId, orderId: order.orderId, renter: order.renter, matcher: matcherPeerId, gpus: reserved,
      class: terms.gpuClass, price: terms.pricePerGpuHour.toString(), startDeadline: terms.startDeadline,
      simulated
    }, 'lease accepted')
    return { type: 'lease-decision', accepted: true, terms, signature }
  }

  #reject (rejection: Rejection, proposal: LeaseProposal | null, orderId: Bytes32 | null, proposerPeerId: string): LeaseDecision {
    this.stats.rejected[rejection.code] = (this.stats.rejected[rejection.code] ?? 0) + 1
    const message = rejection.message.length > LIMITS.message ? rejection.message.slice(0, LIMITS.message - 1) + '…' : rejection.message
    if (RECORDED_REJECTION_CODES.has(rejection.code) && proposal != null) {
      try {
        this.#c.ledger.recordRejection({
          orderId,
          renter: proposal.order.renter,
          matcherPeerId: proposerPeerId === proposal.order.renterPeerId ? null : proposerPeerId,
          code: rejection.code,
          message,
          proposal: JSON.stringify(proposal, jsonReplacer)
        })
      } catch (err) {
        this.#log.error({ err }, 'could not record a rejection')
      }
    }
    const level = rejection.code === 'RATE_LIMITED' || rejection.code === 'MALFORMED' ? 'debug' : 'info'
    this.#log[level]({ code: rejection.code, orderId, peer: proposerPeerId, reason: message }, 'lease proposal rejected')
    return { type: 'lease-decision', accepted: false, orderId, code: rejection.code, message }
  }

  /**
   * Counts the proposal against its peer's per-minute budget before anything costly (decoding, signature
   * checks, SQLite) is done, so a flooding peer is turned away cheaply.
   */
  #checkRate (peer: string): Rejection | null {
    if (this.#proposalRate.consume(peer)) return null
    return { code: 'RATE_LIMITED', message: `more than ${this.#config.leases.proposalsPerMinutePerPeer} proposals a minute from ${peer}` }
  }
}
