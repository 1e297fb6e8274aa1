import { readFile, stat } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { LIMITS, MAX_FLEET_VOUCHERS, ZERO_ADDRESS, decodeVoucher, marketDomain, validateFleetMembership, verifyFleetMembership } from '@gpumesh/protocol'
import type { Ledger } from '@gpumesh/ledger'
import type { Address, FleetMembership, FleetStatus, FleetVouchers, Voucher } from '@gpumesh/protocol'
import { PROVIDER_VERSION } from './constants.js'
import { ProviderStartError } from './errors.js'
import type { ProviderStatus } from './provider.js'

/** A membership file is a few hundred bytes; anything much larger is not one. */
const MAX_MEMBERSHIP_FILE_BYTES = 16 * 1024

/**
 * Reads the fleet membership named by `offers.fleetMembership` (relative paths under the data
 * directory) and checks that it is for this node — its peer id and payment address — signed by the
 * operator it names on this provider's chain, and not expired. Anything else stops the start with a
 * sentence saying what to ask the operator for.
 */
export async function loadFleetMembership (file: string, self: { dataDir: string, peerId: string, payment: Address, chainId: bigint, now: number }): Promise<FleetMembership> {
  const path = isAbsolute(file) ? file : join(self.dataDir, file)
  const bad = (why: string, cause?: unknown): ProviderStartError =>
    new ProviderStartError('BAD_FLEET_MEMBERSHIP', `The fleet membership in ${path} (offers.fleetMembership) ${why}`, cause === undefined ? undefined : { cause })
  let membership: FleetMembership
  try {
    if ((await stat(path)).size > MAX_MEMBERSHIP_FILE_BYTES) throw new Error('the file is too large')
    membership = validateFleetMembership(JSON.parse(await readFile(path, 'utf8')))
  } catch (err) {
    throw bad(`cannot be read: ${(err as Error).message}. Ask the operator for the file "gpumesh fleet sign" writes.`, err)
  }
  try {
    verifyFleetMembership(membership, marketDomain(self.chainId))
  } catch (err) {
    throw bad(`is not signed by its operator ${membership.operator} for chain ${self.chainId}. Ask the operator to sign it again with --chain-id ${self.chainId}.`, err)
  }
  if (membership.peerId !== self.peerId || membership.member.toLowerCase() !== self.payment.toLowerCase()) {
    throw bad(`is for peer ${membership.peerId} and address ${membership.member}, not this node (${self.peerId}, ${self.payment}). Ask the operator to sign one with --peer-id ${self.peerId} --member ${self.payment}.`)
  }
  if (membership.expiresAt <= self.now) {
    throw bad(`expired at ${new Date(membership.expiresAt).toISOString()}. Ask the operator to renew it.`)
  }
  return membership
}

/** The operator a renter may ask for, while the membership holds: null without one or once it expired. */
export function activeOperator (fleet: FleetMembership | null, now: number): Address | null {
  return fleet != null && fleet.expiresAt > now ? fleet.operator : null
}

/** A member's answer to its operator's `status` request, from the daemon's own status. */
export function fleetStatusOf (status: ProviderStatus, startedAt: number | null): FleetStatus {
  const byState = new Map<string, number>()
  for (const gpu of status.gpus) byState.set(gpu.state, (byState.get(gpu.state) ?? 0) + 1)
  const lastError = status.recentErrors.at(-1) ?? null
  return {
    type: 'fleet-status',
    peerId: status.peerId ?? '',
    member: status.paymentAddress,
    version: PROVIDER_VERSION,
    startedAt,
    gpus: [...byState].sort(([a], [b]) => a.localeCompare(b)).slice(0, 16).map(([state, count]) => ({ state, count })),
    activeLeases: status.activeLeases.length,
    earnings: status.earnings.slice(0, 16).map((e) => ({
      token: e.token, chainId: e.chainId, accrued: e.accrued, vouchered: e.vouchered, redeemed: e.redeemed, outstanding: e.outstanding
    })),
    lastError: lastError === null ? null : { at: lastError.at, message: lastError.message.slice(0, LIMITS.message) || 'error' },
    offerProblem: status.offer.reason === null ? null : status.offer.reason.slice(0, LIMITS.message) || null
  }
}

/**
 * A member's answer to its operator's `vouchers` request: the newest voucher of each lease settled at
 * this escrow above what the chain paid, largest first, as the renters signed them. Whoever redeems
 * them, the escrow pays this member's payout address; the member's own `settle onchain` later reads
 * the chain and records what was paid.
 */
export function fleetVouchersOf (ledger: Ledger, self: { peerId: string, member: Address, escrow: Address, chainId: bigint }): FleetVouchers {
  const vouchers: Voucher[] = []
  if (self.escrow !== ZERO_ADDRESS) {
    const unsettled = ledger.unsettledVouchers({ kind: 'onchain', escrow: self.escrow }).sort((a, b) => (a.unsettled > b.unsettled ? -1 : a.unsettled < b.unsettled ? 1 : 0))
    for (const u of unsettled) {
      if (vouchers.length >= MAX_FLEET_VOUCHERS) break
      try {
        const v = decodeVoucher(new TextEncoder().encode(u.voucher.body))
        if (v.chainId === self.chainId && v.verifyingContract.toLowerCase() === self.escrow.toLowerCase()) vouchers.push(v)
      } catch {
        // A stored voucher that no longer decodes is left for `settle onchain` to report.
      }
    }
  }
  return { type: 'fleet-vouchers', peerId: self.peerId, member: self.member, escrow: self.escrow, chainId: self.chainId, vouchers }
}
