/**
 * The fleet file (`fleet.json` in the operator's data directory): the fleet's name, operator and
 * payout addresses, chain, where to reach the network, its members and its revocations. Written aside
 * and renamed over, so a reader never sees half of it; read back with every field checked.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { validateFleetMembership, validateFleetRevocation, jsonReplacer, toWire } from '@gpumesh/protocol'
import type { Address, FleetMembership, FleetRevocation } from '@gpumesh/protocol'
import { getAddress } from 'ethers'
import { CliError } from './errors.js'

export const FLEET_FILE = 'fleet.json'
/** Where `fleet add` and `fleet renew` write each member's join file, under the operator's data directory. */
export const FLEET_JOIN_DIR = 'fleet-members'
/** Where `fleet join` installs the membership on a host, under its data directory. */
export const MEMBERSHIP_FILE = 'fleet-membership.json'
const MAX_FLEET_FILE_BYTES = 16 * 1024 * 1024

export interface FleetMember {
  peerId: string
  name: string
  /** The member's payment address. */
  member: Address
  expiresAt: number
  /** Multiaddrs to reach it for `fleet status` and `fleet settle`. */
  addresses: string[]
  membership: FleetMembership
}

export interface FleetFile {
  version: 1
  name: string
  operator: Address
  payout: Address
  chainId: bigint
  /** Multiaddrs of matchers (or any peers) to publish revocations through. */
  bootstrap: string[]
  members: FleetMember[]
  revocations: FleetRevocation[]
}

/** What `fleet add` hands to a host: the membership, and the fleet's payout address to pay into. */
export interface JoinFile {
  fleet: string
  payout: Address
  membership: FleetMembership
}

const address = z.string().transform((v, ctx) => {
  try { return getAddress(v) as Address } catch { ctx.addIssue({ code: 'custom', message: 'not an address', input: v }); return z.NEVER }
})
const memberSchema = z.strictObject({
  peerId: z.string().min(1).max(128),
  name: z.string().min(1).max(128),
  member: address,
  expiresAt: z.int().nonnegative(),
  addresses: z.array(z.string().min(1).max(256)).max(16),
  membership: z.unknown().transform((v) => validateFleetMembership(v))
})
const fleetSchema = z.strictObject({
  version: z.literal(1),
  name: z.string().min(1).max(128),
  operator: address,
  payout: address,
  chainId: z.string().regex(/^[1-9]\d{0,18}$/).transform((v) => BigInt(v)),
  bootstrap: z.array(z.string().min(1).max(256)).max(64),
  members: z.array(memberSchema).max(100_000),
  revocations: z.array(z.unknown().transform((v) => validateFleetRevocation(v))).max(100_000)
})
export const joinFileSchema = z.strictObject({
  fleet: z.string().min(1).max(128),
  payout: address,
  membership: z.unknown().transform((v) => validateFleetMembership(v))
})

export async function readFleetFile (dataDir: string): Promise<FleetFile> {
  const path = join(dataDir, FLEET_FILE)
  let text: string
  try {
    if ((await stat(path)).size > MAX_FLEET_FILE_BYTES) throw new Error('too large')
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new CliError('NO_FLEET', `No fleet file in ${dataDir} (${path}). Run "gpumesh fleet init --name NAME --payout ADDRESS" there first.`, { cause: err })
  }
  try {
    return fleetSchema.parse(JSON.parse(text)) as FleetFile
  } catch (err) {
    const issue = err instanceof z.ZodError ? err.issues[0] : undefined
    const where = issue == null ? '' : ` at ${issue.path.join('.') || 'the top'} (${issue.message})`
    throw new CliError('BAD_FLEET_FILE', `The fleet file ${path} is damaged${where}. Restore it from a backup.`, { cause: err })
  }
}

export async function writeFleetFile (dataDir: string, fleet: FleetFile): Promise<string> {
  const path = join(dataDir, FLEET_FILE)
  await writeAside(path, JSON.stringify(toWire(fleet), null, 2) + '\n', 0o600)
  return path
}

export async function writeAside (path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, text, { mode })
  await rename(tmp, path)
}

export function joinFileText (join: JoinFile): string {
  return JSON.stringify(join, jsonReplacer, 2) + '\n'
}
