/**
 * Proposes a lease to candidates in rank order until one accepts with valid signed terms, each attempt
 * with its own deadline, and records every outcome in the provider records and latency estimates.
 */
import { multiaddr, peerIdFromString, request, RequestError } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, MAX_MESSAGE_BYTES, decodeLeaseDecision, encodeLeaseProposal, isProtocolError, marketDomain,
  verifyLeaseTerms
} from '@gpumesh/protocol'
import type { Multiaddr, StreamHost } from '@gpumesh/net'
import type { DeclinedProposal, LeaseTerms, Offer, Order, PaymentSignature } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import type { Clock } from '@gpumesh/protocol'
import type { LatencyEstimates } from './latency.js'
import type { Candidate } from './matching.js'
import type { ProviderRecords } from './provider-record.js'

export interface ProposerOptions {
  proposalTimeoutMs: number
}

export interface ProposerComponents {
  node: StreamHost
  records: ProviderRecords
  latency: LatencyEstimates
  clock: Clock
  logger: Logger
}

export interface AcceptedLease {
  candidate: Candidate
  terms: LeaseTerms
  signature: PaymentSignature
}

export interface ProposalOutcome {
  lease: AcceptedLease | null
  /** Candidates that did not lease, in the order they were tried. */
  declined: DeclinedProposal[]
}

/**
 * Why signed terms do not answer the order on the offer they were proposed on; null when they do.
 * The signature itself is checked by the caller (by the offer's bound payment address).
 */
export function termsMismatch (terms: LeaseTerms, order: Order, candidate: Candidate): string | null {
  if (terms.orderId !== order.orderId) return 'orderId'
  if (terms.providerPeerId !== candidate.peerId) return 'providerPeerId'
  if (terms.provider !== candidate.offer.binding.payment) return 'provider'
  if (terms.renter !== order.renter) return 'renter'
  if (terms.renterPeerId !== order.renterPeerId) return 'renterPeerId'
  if (terms.token !== order.token || terms.chainId !== order.chainId) return 'token'
  if (terms.pricePerGpuHour > order.maxPricePerGpuHour) return 'pricePerGpuHour'
  if (terms.gpus.length !== order.requirements.gpuCount) return 'gpus'
  if (terms.durationSec !== order.durationSec) return 'durationSec'
  if (terms.jobHash !== order.jobHash) return 'jobHash'
  return null
}

/** The offer's addresses with `/p2p/<peer id>` (dialable), or the peer id alone when there are none. */
export function dialTarget (offer: Offer): Multiaddr[] | ReturnType<typeof peerIdFromString> {
  const addresses: Multiaddr[] = []
  for (const text of offer.addresses) {
    try {
      const address = multiaddr(text)
      addresses.push(address.getComponents().some((c) => c.name === 'p2p') ? address : address.encapsulate(`/p2p/${offer.peerId}`))
    } catch {
      // an address we cannot parse is one we cannot dial
    }
  }
  return addresses.length > 0 ? addresses : peerIdFromString(offer.peerId)
}

export class Proposer {
  readonly #components: ProposerComponents
  readonly #options: ProposerOptions
  readonly #log: Logger

  constructor (components: ProposerComponents, options: ProposerOptions) {
    this.#components = components
    this.#options = options
    this.#log = components.logger.child({ module: 'proposer' })
  }

  /** Tries `candidates` in order; stops at the first valid acceptance or when `signal` aborts. */
  async propose (order: Order, candidates: readonly Candidate[], options: { signal: AbortSignal }): Promise<ProposalOutcome> {
    const declined: DeclinedProposal[] = []
    for (const candidate of candidates) {
      if (options.signal.aborted) break
      const result = await this.#proposeOne(order, candidate, options.signal)
      if (typeof result !== 'string') return { lease: result, declined }
      declined.push({ providerPeerId: candidate.peerId, code: result })
    }
    return { lease: null, declined }
  }

  /** The accepted lease, or the reason code it was not. */
  async #proposeOne (order: Order, candidate: Candidate, signal: AbortSignal): Promise<AcceptedLease | string> {
    const { node, records, latency, clock } = this.#components
    const peerId = candidate.peerId
    const proposal = encodeLeaseProposal({
      type: 'lease-proposal',
      order,
      pricePerGpuHour: candidate.pricePerGpuHour,
      offerSequence: candidate.offer.sequence,
      gpuClass: candidate.gpuClass
    })
    const started = clock.monotonicNow()
    let bytes: Uint8Array
    try {
      bytes = await request(node, dialTarget(candidate.offer), LEASE_PROTOCOL, proposal, {
        signal,
        timeoutMs: this.#options.proposalTimeoutMs,
        maxResponseBytes: MAX_MESSAGE_BYTES['lease-decision']
      })
    } catch (err) {
      if (err instanceof RequestError) {
        if (err.code === 'ABORTED') return 'ABORTED'
        if (err.code === 'TIMEOUT') records.recordTimeout(peerId)
        else records.recordFailed(peerId)
        this.#log.info({ provider: peerId, code: err.code, remoteCode: err.remoteCode }, 'proposal failed')
        return err.code === 'REMOTE_ERROR' ? sanitizeCode(err.remoteCode) : err.code
      }
      throw err
    }
    latency.record(peerId, clock.monotonicNow() - started)
    let decision
    try {
      decision = decodeLeaseDecision(bytes)
    } catch (err) {
      if (!isProtocolError(err)) throw err
      records.recordFailed(peerId)
      this.#log.warn({ provider: peerId, code: err.code, field: err.field }, 'provider sent a malformed lease decision')
      return 'MALFORMED_DECISION'
    }
    if (!decision.accepted) {
      records.recordRejected(peerId)
      this.#log.info({ provider: peerId, code: decision.code }, 'proposal rejected')
      return decision.code
    }
    const mismatch = termsMismatch(decision.terms, order, candidate)
    try {
      if (mismatch != null) throw new Error(`terms differ from the order in ${mismatch}`)
      verifyLeaseTerms(decision.terms, decision.signature, marketDomain(order.chainId))
    } catch (err) {
      records.recordFailed(peerId)
      this.#log.warn({ provider: peerId, err }, 'provider accepted with terms that do not hold')
      return 'BAD_TERMS'
    }
    records.recordAccepted(peerId)
    this.#log.info({ provider: peerId, orderId: order.orderId, leaseId: decision.terms.leaseId }, 'lease accepted')
    return { candidate, terms: decision.terms, signature: decision.signature }
  }
}

/** A remote's code as an explanation entry: upper-case reason code or `REMOTE_ERROR`. */
function sanitizeCode (code: string | undefined): string {
  return code != null && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : 'REMOTE_ERROR'
}
