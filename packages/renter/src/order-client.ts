import { randomBytes } from 'node:crypto'
import { RequestError, multiaddr, request, type GpumeshNode, type Multiaddr } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, ORDER_PROTOCOL, bytesToHex, decodeLeaseDecision, decodeOrderResult, encodeLeaseProposal,
  encodeOrder, isProtocolError, marketDomain, paymentKeyAddress, signOrder, verifyLeaseTerms,
  type LeaseRejectCode, type LeaseTerms, type Order, type PaymentKey, type PaymentSignature
} from '@gpumesh/protocol'
import {
  DEFAULT_ORDER_ATTEMPTS, DEFAULT_ORDER_TIMEOUT_MS, DEFAULT_ORDER_TTL_MS, DEFAULT_PROPOSAL_TIMEOUT_MS
} from './constants.js'
import { OrderError } from './errors.js'

/**
 * Getting a lease: sign an order, send it to a matcher (`/gpumesh/order/1.0.0`) or propose it to a
 * provider directly (`/gpumesh/lease/1.0.0`), and check the provider's signed terms before trusting
 * them. Every failure is an {@link OrderError} whose message is a sentence.
 */

/** A lease the renter holds: the provider's signed terms and where to reach it. */
export interface GrantedLease {
  terms: LeaseTerms
  signature: PaymentSignature
  providerPeerId: string
  providerAddresses: string[]
  /** How it was obtained. */
  via: 'matcher' | 'provider'
}

export interface SignJobOrderOptions extends Pick<Order, 'renterPeerId' | 'requirements' | 'maxPricePerGpuHour' | 'durationSec' | 'token' | 'chainId' | 'jobHash'> {
  key: PaymentKey
  /** Unix ms; the order expires `ttlMs` later. */
  now: number
  ttlMs?: number
}

/** Signs a new order (random order id) with the renter's payment key. */
export function signJobOrder (o: SignJobOrderOptions): Order {
  const fields = {
    orderId: bytesToHex(randomBytes(32)),
    renter: paymentKeyAddress(o.key),
    renterPeerId: o.renterPeerId,
    requirements: o.requirements,
    maxPricePerGpuHour: o.maxPricePerGpuHour,
    durationSec: o.durationSec,
    token: o.token,
    jobHash: o.jobHash,
    expiresAt: o.now + (o.ttlMs ?? DEFAULT_ORDER_TTL_MS)
  }
  const signature = signOrder(fields, o.key, marketDomain(o.chainId))
  return { type: 'order', ...fields, chainId: o.chainId, signature }
}

export interface PlaceOrderOptions {
  /** Must be the node whose peer id is the order's `renterPeerId`. */
  node: GpumeshNode
  /** The matcher's addresses (multiaddrs with `/p2p/<id>`). */
  matcher: ReadonlyArray<string | Multiaddr>
  order: Order
  signal?: AbortSignal
  /** Per attempt; at least the matcher's own deadline (20 s by default). */
  timeoutMs?: number
  /** Sending the same order again is safe: the matcher answers it once. */
  attempts?: number
}

/** Sends the order to a matcher and returns the verified lease, or throws OrderError. */
export async function placeOrder (o: PlaceOrderOptions): Promise<GrantedLease> {
  const target = toMultiaddrs(o.matcher, 'matcher')
  const attempts = Math.max(1, o.attempts ?? DEFAULT_ORDER_ATTEMPTS)
  const bytes = encodeOrder(o.order)
  let answer: Uint8Array | null = null
  for (let attempt = 1; answer == null; attempt++) {
    try {
      answer = await request(o.node, target, ORDER_PROTOCOL, bytes, {
        timeoutMs: o.timeoutMs ?? DEFAULT_ORDER_TIMEOUT_MS,
        ...(o.signal != null ? { signal: o.signal } : {})
      })
    } catch (err) {
      const mapped = matcherRequestError(err)
      if (!mapped.retryable || attempt >= attempts || o.signal?.aborted === true) throw mapped
    }
  }
  let result
  try {
    result = decodeOrderResult(answer)
  } catch (err) {
    throw new OrderError('MATCHER_REFUSED', `The matcher's answer is not a valid order result (${(err as Error).message}).`, { cause: err, remoteCode: 'MALFORMED' })
  }
  if (result.orderId !== o.order.orderId) throw new OrderError('BAD_TERMS', 'The matcher answered about another order.')
  if (result.status === 'no-match') {
    throw new OrderError('NO_MATCH', `No provider leased: ${result.explanation.message}`, { explanation: result.explanation })
  }
  checkTerms(o.order, result.lease.terms, result.lease.signature, result.providerPeerId)
  return { terms: result.lease.terms, signature: result.lease.signature, providerPeerId: result.providerPeerId, providerAddresses: result.providerAddresses, via: 'matcher' }
}

export interface ProposeOptions {
  /** Must be the node whose peer id is the order's `renterPeerId`. */
  node: GpumeshNode
  /** The provider's addresses; with `/p2p/<id>` the terms must come from that peer. */
  provider: ReadonlyArray<string | Multiaddr>
  order: Order
  /**
   * What to propose: the price per GPU-hour and class, from the provider's offer when the renter has it.
   * Without a price the order's maximum is proposed — the provider leases at the proposed price.
   * Without classes, the order's acceptable classes are tried in turn.
   */
  pricePerGpuHour?: bigint
  gpuClasses?: readonly string[]
  offerSequence?: number
  signal?: AbortSignal
  timeoutMs?: number
}

/** Codes after which the same order may still be leased in another GPU class. */
const TRY_NEXT_CLASS: ReadonlySet<LeaseRejectCode> = new Set(['UNSUPPORTED_REQUIREMENTS', 'NO_CAPACITY', 'PRICE_TOO_LOW'])

/**
 * Proposes the renter's own order to a provider it knows, without a matcher, and returns the verified
 * lease or throws OrderError (`PROVIDER_REJECTED` with the provider's reason code).
 */
export async function proposeToProvider (o: ProposeOptions): Promise<GrantedLease> {
  const target = toMultiaddrs(o.provider, 'provider')
  const expectedPeer = target.map((m) => m.getComponents().find((c) => c.name === 'p2p')?.value).find((v) => v != null) ?? null
  const classes = o.gpuClasses ?? o.order.requirements.classes
  if (classes.length === 0) {
    throw new OrderError('PROVIDER_REJECTED', 'To lease from a provider directly, name the GPU classes you accept (gpus.classes in the job file).', { rejectCode: 'UNSUPPORTED_REQUIREMENTS' })
  }
  let last: OrderError | null = null
  for (const gpuClass of classes) {
    let answer: Uint8Array
    try {
      answer = await request(o.node, target, LEASE_PROTOCOL, encodeLeaseProposal({
        type: 'lease-proposal',
        order: o.order,
        pricePerGpuHour: o.pricePerGpuHour ?? o.order.maxPricePerGpuHour,
        offerSequence: o.offerSequence ?? 0,
        gpuClass
      }), { timeoutMs: o.timeoutMs ?? DEFAULT_PROPOSAL_TIMEOUT_MS, ...(o.signal != null ? { signal: o.signal } : {}) })
    } catch (err) {
      throw providerRequestError(err)
    }
    let decision
    try {
      decision = decodeLeaseDecision(answer)
    } catch (err) {
      throw new OrderError('BAD_TERMS', `The provider's answer is not a valid lease decision (${(err as Error).message}).`, { cause: err })
    }
    if (decision.accepted) {
      checkTerms(o.order, decision.terms, decision.signature, expectedPeer ?? decision.terms.providerPeerId)
      return {
        terms: decision.terms,
        signature: decision.signature,
        providerPeerId: decision.terms.providerPeerId,
        providerAddresses: decision.terms.providerAddresses.length > 0 ? decision.terms.providerAddresses : target.map(String),
        via: 'provider'
      }
    }
    last = new OrderError('PROVIDER_REJECTED', `The provider declined the lease: ${describeLeaseRejection(decision.code)} (${decision.code}: ${decision.message}).`, { rejectCode: decision.code })
    if (!TRY_NEXT_CLASS.has(decision.code)) break
  }
  throw last ?? new OrderError('PROVIDER_REJECTED', 'The provider declined the lease.')
}

/**
 * Checks a provider's lease terms against the order the renter signed: signed by the provider named in
 * the terms, on the order's chain, for this order, renter, job, token, GPU count and duration, at a
 * price within the order's cap, from the expected peer. Throws OrderError BAD_TERMS.
 */
export function checkTerms (order: Order, terms: LeaseTerms, signature: PaymentSignature, expectedProviderPeerId: string): void {
  try {
    verifyLeaseTerms(terms, signature, marketDomain(order.chainId))
  } catch (err) {
    if (isProtocolError(err)) throw new OrderError('BAD_TERMS', `The lease terms are not signed by the provider they name (${err.message}); not using them.`, { cause: err })
    throw err
  }
  const wrong = (what: string): never => { throw new OrderError('BAD_TERMS', `The lease terms do not match the order: ${what}. Not using them.`) }
  if (terms.orderId !== order.orderId) wrong('another order id')
  if (terms.renter.toLowerCase() !== order.renter.toLowerCase() || terms.renterPeerId !== order.renterPeerId) wrong('another renter')
  if (terms.token.toLowerCase() !== order.token.toLowerCase() || terms.chainId !== order.chainId) wrong('another token or chain')
  if (terms.jobHash !== order.jobHash) wrong('another job bundle')
  if (terms.pricePerGpuHour > order.maxPricePerGpuHour) wrong(`price ${terms.pricePerGpuHour} is above the order's ${order.maxPricePerGpuHour}`)
  if (terms.gpus.length !== order.requirements.gpuCount) wrong(`${terms.gpus.length} GPUs instead of ${order.requirements.gpuCount}`)
  if (terms.durationSec !== order.durationSec) wrong(`${terms.durationSec} s instead of ${order.durationSec} s`)
  if (order.requirements.classes.length > 0 && !order.requirements.classes.includes(terms.gpuClass)) wrong(`class ${terms.gpuClass} was not asked for`)
  if (terms.providerPeerId !== expectedProviderPeerId) wrong('signed for another peer than the one that answered')
}

/** A matcher's refusal code (net error envelope), in words. */
export function describeMatcherRefusal (code: string): string {
  switch (code) {
    case 'MALFORMED': return 'the matcher could not read the order'
    case 'INVALID_FIELD': return 'the matcher found a field of the order invalid'
    case 'TOO_LARGE': return 'the order is larger than the matcher accepts'
    case 'BAD_SIGNATURE': return 'the order\'s signature did not verify (wrong key or chain)'
    case 'EXPIRED': return 'the order had expired when the matcher got it (check this computer\'s clock)'
    case 'NOT_RENTER': return 'the order was sent from another peer than the one it names as renter'
    case 'DUPLICATE_ORDER': return 'the matcher already saw a different order under this order id'
    case 'BUSY': return 'the matcher is busy with other orders; try again shortly'
    case 'STOPPING': return 'the matcher is shutting down'
    case 'RATE_LIMITED': return 'too many orders were sent too fast; try again in a moment'
    case 'TIMEOUT': return 'the matcher ran out of time while proposing to providers'
    case 'INTERNAL': return 'the matcher failed internally'
    default: return `the matcher refused the order (${code})`
  }
}

/** A provider's lease reject code, in words. */
export function describeLeaseRejection (code: string): string {
  switch (code) {
    case 'MALFORMED': return 'it could not read the proposal, or the price was above the order\'s maximum'
    case 'BAD_SIGNATURE': return 'the order\'s signature did not verify'
    case 'EXPIRED': return 'the order had expired'
    case 'REPLAY': return 'this order was already leased'
    case 'RENTER_BLOCKED': return 'this provider does not serve your address'
    case 'MATCHER_NOT_TRUSTED': return 'this provider takes proposals only from matchers it trusts'
    case 'PRICE_TOO_LOW': return 'the price is below what it asks now'
    case 'UNSUPPORTED_REQUIREMENTS': return 'it cannot meet the requirements (class, memory, duration, token, region, fleet operator or simulated GPUs)'
    case 'NO_CAPACITY': return 'not enough fitting GPUs are free right now'
    case 'TOO_MANY_LEASES': return 'it is running as many leases as it takes'
    case 'INSUFFICIENT_ESCROW': return 'your escrow does not cover what you owe it and the next billing interval (gpumesh escrow status, gpumesh escrow deposit)'
    case 'RATE_LIMITED': return 'too many proposals were sent too fast'
    case 'INTERNAL': return 'it failed internally; proposing again is safe'
    case 'TIMEOUT': return 'it did not answer in time'
    default: return `it refused (${code})`
  }
}

const RETRYABLE_MATCHER_CODES: ReadonlySet<string> = new Set(['BUSY', 'RATE_LIMITED', 'TIMEOUT', 'INTERNAL'])

function matcherRequestError (err: unknown): OrderError {
  if (err instanceof RequestError) {
    if (err.code === 'ABORTED') return new OrderError('ABORTED', 'Stopped before the matcher answered.', { cause: err })
    if (err.code === 'REMOTE_ERROR') {
      const code = err.remoteCode ?? 'INTERNAL'
      return new OrderError('MATCHER_REFUSED', `The matcher refused the order: ${describeMatcherRefusal(code)} (${code}).`, { cause: err, remoteCode: code, retryable: RETRYABLE_MATCHER_CODES.has(code) })
    }
    const why = err.code === 'TIMEOUT'
      ? 'it did not answer in time'
      : err.code === 'DIAL_FAILED' ? 'no connection could be made' : `the exchange failed (${err.code})`
    return new OrderError('MATCHER_UNREACHABLE', `Could not reach the matcher: ${why}. Check its address and that it is running.`, { cause: err, remoteCode: err.code, retryable: err.code === 'TIMEOUT' || err.code === 'STREAM_RESET' })
  }
  return new OrderError('MATCHER_UNREACHABLE', `Could not reach the matcher: ${(err as Error)?.message ?? String(err)}.`, { cause: err })
}

function providerRequestError (err: unknown): OrderError {
  if (err instanceof RequestError && err.code === 'ABORTED') return new OrderError('ABORTED', 'Stopped before the provider answered.', { cause: err })
  if (err instanceof RequestError && err.code === 'REMOTE_ERROR') {
    const code = err.remoteCode ?? 'INTERNAL'
    return new OrderError('PROVIDER_REJECTED', `The provider refused the proposal: ${describeLeaseRejection(code)} (${code}).`, { cause: err, remoteCode: code })
  }
  const e = err as { code?: string, message?: string }
  return new OrderError('PROVIDER_UNREACHABLE', `Could not reach the provider: ${e?.message ?? String(err)}. Check its address and that it is running.`, { cause: err, remoteCode: e?.code ?? 'UNKNOWN' })
}

function toMultiaddrs (addresses: ReadonlyArray<string | Multiaddr>, what: string): Multiaddr[] {
  if (addresses.length === 0) throw new OrderError(what === 'matcher' ? 'MATCHER_UNREACHABLE' : 'PROVIDER_UNREACHABLE', `No ${what} address given.`)
  try {
    return addresses.map((a) => typeof a === 'string' ? multiaddr(a) : a)
  } catch (err) {
    throw new OrderError(what === 'matcher' ? 'MATCHER_UNREACHABLE' : 'PROVIDER_UNREACHABLE', `Not a ${what} address: ${(err as Error).message}.`, { cause: err })
  }
}
