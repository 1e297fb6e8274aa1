import { readFile, stat } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { marketDomain, validateFleetMembership, verifyFleetMembership } from '@gpumesh/protocol'
import type { Address, FleetMembership } from '@gpumesh/protocol'
import { ProviderStartError } from './errors.js'

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
