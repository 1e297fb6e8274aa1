/**
 * The operator's side of the fleet protocol: ask every member of a fleet at once (bounded
 * concurrency, a deadline per member) for its status or its newest vouchers. Every request is signed
 * by the operator's payment key for that member and this node, with a fresh nonce and a short
 * validity. A member that does not answer is reported as such, with why — never dropped.
 */
import { randomBytes } from 'node:crypto'
import { RequestError, multiaddr, peerIdFromString, request, type GpumeshNode } from '@gpumesh/net'
import {
  FLEET_MAX_BYTES, FLEET_PROTOCOL, bytesToHex, decodeFleetStatus, decodeFleetVouchers, encodeFleetRequest,
  marketDomain, paymentKeyAddress, signFleetRequest
} from '@gpumesh/protocol'
import type { Bytes32, FleetRequestKind, FleetStatus, FleetVouchers, PaymentKey } from '@gpumesh/protocol'

export const DEFAULT_FLEET_CONCURRENCY = 16
export const DEFAULT_FLEET_TIMEOUT_MS = 5_000
/** How long a request is valid: enough for one round trip, short enough that a captured one is soon worthless. */
export const FLEET_REQUEST_VALIDITY_MS = 30_000

export interface FleetTarget {
  peerId: string
  /** Multiaddrs to dial (with or without /p2p/); empty: whatever the node already knows. */
  addresses?: string[]
}

export interface AskFleetOptions {
  node: GpumeshNode
  operatorKey: PaymentKey
  chainId: bigint
  members: readonly FleetTarget[]
  concurrency?: number
  timeoutMs?: number
  signal?: AbortSignal
  now?: () => number
}

export type FleetAnswer<T> =
  | { peerId: string, ok: true, value: T, ms: number }
  | { peerId: string, ok: false, error: string, code: string, ms: number }

type Answer<K extends FleetRequestKind> = K extends 'status' ? FleetStatus : FleetVouchers

/** Asks every member for `kind`; answers come back in the members' order. */
export async function askFleet<K extends FleetRequestKind> (kind: K, options: AskFleetOptions): Promise<Array<FleetAnswer<Answer<K>>>> {
  const { node, members } = options
  const now = options.now ?? Date.now
  const operator = paymentKeyAddress(options.operatorKey)
  const domain = marketDomain(options.chainId)
  const asker = node.peerId.toString()
  const timeoutMs = options.timeoutMs ?? DEFAULT_FLEET_TIMEOUT_MS
  const results = new Array<FleetAnswer<Answer<K>>>(members.length)
  let next = 0
  const askOne = async (member: FleetTarget): Promise<FleetAnswer<Answer<K>>> => {
    const started = performance.now()
    const ms = (): number => Math.round(performance.now() - started)
    try {
      const issuedAt = now()
      const req = signFleetRequest({
        kind, operator, asker, member: member.peerId, nonce: bytesToHex(randomBytes(32)) as Bytes32, issuedAt, expiresAt: issuedAt + FLEET_REQUEST_VALIDITY_MS
      }, options.operatorKey, domain)
      const target = member.addresses != null && member.addresses.length > 0
        ? member.addresses.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${member.peerId}`))
        : peerIdFromString(member.peerId)
      const bytes = await request(node, target, FLEET_PROTOCOL, encodeFleetRequest(req), {
        timeoutMs,
        maxResponseBytes: FLEET_MAX_BYTES.vouchers,
        ...(options.signal != null ? { signal: options.signal } : {})
      })
      const value = (kind === 'status' ? decodeFleetStatus(bytes) : decodeFleetVouchers(bytes)) as Answer<K>
      if (value.peerId !== member.peerId) return { peerId: member.peerId, ok: false, code: 'WRONG_PEER', error: `answered as ${value.peerId}`, ms: ms() }
      return { peerId: member.peerId, ok: true, value, ms: ms() }
    } catch (err) {
      const e = err as Error & { code?: string, remoteCode?: string }
      const code = err instanceof RequestError ? (e.remoteCode ?? e.code ?? 'FAILED') : (e.code ?? 'FAILED')
      return { peerId: member.peerId, ok: false, code: String(code), error: e.message, ms: ms() }
    }
  }
  const worker = async (): Promise<void> => {
    while (next < members.length) {
      const i = next++
      const member = members[i] as FleetTarget
      results[i] = await askOne(member)
    }
  }
  const concurrency = Math.max(1, Math.min(options.concurrency ?? DEFAULT_FLEET_CONCURRENCY, members.length))
  await Promise.all(Array.from({ length: concurrency }, worker))
  return results
}
