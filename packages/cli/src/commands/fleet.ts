import { mkdir, readFile, stat } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { isDocument, parseDocument } from 'yaml'
import { createNode, peerKeyFromBytes, publish, type GpumeshNode } from '@gpumesh/net'
import {
  FLEET_REVOCATIONS_TOPIC, encodeFleetRevocation, formatAmount, jsonReplacer, marketDomain, signFleetMembership,
  signFleetRevocation, validateFleetMembership, verifyFleetMembership
} from '@gpumesh/protocol'
import { askFleet, DEFAULT_FLEET_CONCURRENCY, DEFAULT_FLEET_TIMEOUT_MS, settleFleet, type FleetAnswer } from '@gpumesh/provider'
import { EscrowClient } from '@gpumesh/settlement'
import type { Address, FleetMembership, FleetStatus, PaymentKey } from '@gpumesh/protocol'
import { addressOption, resolveChainTarget } from '../chain.js'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import {
  FLEET_FILE, FLEET_JOIN_DIR, MEMBERSHIP_FILE, joinFileSchema, joinFileText, readFleetFile, writeAside, writeFleetFile,
  type FleetFile, type FleetMember
} from '../fleet-file.js'
import { CONFIG_FILE, KEYSTORE_FILE, PEER_KEY_FILE, createIdentity, loadIdentity } from '../identity.js'
import { obtainPassword } from '../prompt.js'
import { renderTable } from '../table.js'
import { loadProviderConfig } from './provider-config.js'
import type { Command, CommandContext } from '../context.js'

const DEFAULT_DAYS = 30
const MAX_DAYS = 366
const DAY_MS = 24 * 3600 * 1000
/** `fleet renew` re-signs memberships that expire within this many days. */
const RENEW_WITHIN_DAYS = 7
/** How long revoke waits for a matcher to subscribe before giving up on publishing. */
const PUBLISH_WAIT_MS = 10_000

const usage = (message: string): CliError => new CliError('BAD_OPTION', message, { exitCode: EXIT.USAGE })

function daysOption (text: string): number {
  const days = Number(text)
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) throw usage(`--days must be a whole number from 1 to ${MAX_DAYS}.`)
  return days
}

function peerIdOption (text: string | undefined, what: string): string {
  if (text == null) throw usage(`${what} is required: the host's peer id ("gpumesh init" and "gpumesh provider status" print it).`)
  try {
    peerIdFromString(text)
  } catch {
    throw usage(`"${text}" is not a libp2p peer id.`)
  }
  return text
}

function multiaddrsOption (list: string[] | undefined, flag: string): string[] {
  const out = list ?? []
  for (const a of out) {
    try { multiaddr(a) } catch { throw usage(`${flag}: "${a}" is not a multiaddr (like /ip4/10.0.0.5/tcp/4001).`) }
  }
  return out
}

async function fileExists (path: string): Promise<boolean> {
  try { await stat(path); return true } catch { return false }
}

async function operatorKey (ctx: CommandContext, dataDir: string, fleet: FleetFile): Promise<PaymentKey> {
  const password = await obtainPassword(ctx, { confirm: false, allowEmpty: true })
  const identity = await loadIdentity(dataDir, password)
  if (identity.address.toLowerCase() !== fleet.operator.toLowerCase()) {
    throw new CliError('NOT_OPERATOR', `The payment key in ${dataDir} is ${identity.address}, but the fleet's operator is ${fleet.operator}. Run this in the operator's data directory.`)
  }
  return identity.wallet
}

function signMember (fleet: FleetFile, key: PaymentKey, m: { peerId: string, member: Address }, days: number): FleetMembership {
  const fields = { operator: fleet.operator, member: m.member, peerId: m.peerId, expiresAt: Date.now() + days * DAY_MS }
  return validateFleetMembership({ ...fields, proof: signFleetMembership(fields, key, marketDomain(fleet.chainId)) })
}

async function writeJoinFile (dataDir: string, fleet: FleetFile, member: FleetMember): Promise<string> {
  const dir = join(dataDir, FLEET_JOIN_DIR)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, `${member.name.replace(/[^A-Za-z0-9._-]/g, '_')}.json`)
  await writeAside(path, joinFileText({ fleet: fleet.name, payout: fleet.payout, membership: member.membership }), 0o644)
  return path
}

export const fleetInitCommand: Command = {
  name: 'fleet init',
  summary: 'Start a fleet: the operator identity (created if missing) and the fleet file with its payout address.',
  usage: 'fleet init --name NAME --payout ADDRESS [--chain-id ID] [--bootstrap MULTIADDR]... [--force] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        payout: { type: 'string' },
        'chain-id': { type: 'string', default: '31337' },
        bootstrap: { type: 'string', multiple: true },
        force: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    if (values.name == null || values.name.length > 128) throw usage('--name is required: the fleet\'s name (up to 128 characters).')
    if (values.payout == null) throw usage('--payout is required: the address the whole fleet is paid into.')
    const payout = addressOption(values.payout, '--payout')
    if (!/^[1-9]\d{0,18}$/.test(values['chain-id'])) throw usage('--chain-id must be a positive whole number (the providers\' pricing.chainId).')
    const bootstrap = multiaddrsOption(values.bootstrap, '--bootstrap')
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    if (!values.force && await fileExists(join(dataDir, FLEET_FILE))) {
      throw new CliError('FLEET_EXISTS', `A fleet file already exists in ${dataDir}. Keep it, or pass --force to start over (its members would have to join again).`)
    }
    const hasIdentity = await fileExists(join(dataDir, KEYSTORE_FILE)) && await fileExists(join(dataDir, PEER_KEY_FILE))
    const password = await obtainPassword(ctx, { confirm: !hasIdentity, allowEmpty: false })
    const operator = hasIdentity ? (await loadIdentity(dataDir, password)).address : (await createIdentity(dataDir, { password })).address
    const fleet: FleetFile = { version: 1, name: values.name, operator: operator as Address, payout, chainId: BigInt(values['chain-id']), bootstrap, members: [], revocations: [] }
    const path = await writeFleetFile(dataDir, fleet)
    if (values.json) ctx.stdout(JSON.stringify({ fleet: path, name: fleet.name, operator, payout, chainId: fleet.chainId }, jsonReplacer) + '\n')
    else {
      ctx.stdout([
        `Fleet "${fleet.name}" started in ${path}`,
        `  operator  ${operator}${hasIdentity ? ' (existing key)' : ' (new key; keep the password safe)'}`,
        `  payout    ${payout}`,
        'Add each host with "gpumesh fleet add PEER_ID --member ADDRESS --name NAME --address MULTIADDR".',
        ''
      ].join('\n'))
    }
    return EXIT.OK
  }
}

export const fleetAddCommand: Command = {
  name: 'fleet add',
  summary: 'Vouch for one host: sign its membership, record it in the fleet file and write its join file.',
  usage: 'fleet add PEER_ID --member ADDRESS [--name N] [--days D] [--address MULTIADDR]... [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        member: { type: 'string' },
        name: { type: 'string' },
        days: { type: 'string', default: String(DEFAULT_DAYS) },
        address: { type: 'string', multiple: true },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const peerId = peerIdOption(positionals[0], 'PEER_ID')
    if (values.member == null) throw usage('--member is required: the host\'s payment address ("gpumesh provider status" prints it).')
    const member = addressOption(values.member, '--member')
    const days = daysOption(values.days)
    const addresses = multiaddrsOption(values.address, '--address')
    const name = values.name ?? peerId.slice(-8)
    if (name.length > 128) throw usage('--name is at most 128 characters.')
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const fleet = await readFleetFile(dataDir)
    if (fleet.revocations.some((r) => r.peerId === peerId)) {
      throw new CliError('REVOKED', `Peer ${peerId} was revoked from this fleet; matchers refuse it under this operator for good. Give the host a new identity ("gpumesh init --force") and add its new peer id.`)
    }
    const key = await operatorKey(ctx, dataDir, fleet)
    const membership = signMember(fleet, key, { peerId, member }, days)
    const entry: FleetMember = { peerId, name, member, expiresAt: membership.expiresAt, addresses, membership }
    const others = fleet.members.filter((m) => m.peerId !== peerId)
    if (others.some((m) => m.name === name)) throw usage(`Another member is already named "${name}"; pick another --name.`)
    fleet.members = [...others, entry]
    await writeFleetFile(dataDir, fleet)
    const path = await writeJoinFile(dataDir, fleet, entry)
    if (values.json) ctx.stdout(JSON.stringify({ peerId, name, member, expiresAt: membership.expiresAt, joinFile: path }) + '\n')
    else {
      ctx.stdout([
        `Added ${name} (${peerId}) to fleet "${fleet.name}" until ${new Date(membership.expiresAt).toISOString()}.`,
        `Copy ${path} to the host and run "gpumesh fleet join ${FLEET_JOIN_DIR}/${path.split('/').pop() ?? ''}" there, then restart its provider.`,
        ''
      ].join('\n'))
    }
    return EXIT.OK
  }
}

export const fleetJoinCommand: Command = {
  name: 'fleet join',
  summary: 'On a host: install the membership from a join file ("fleet add" wrote it), and optionally pay into the fleet\'s payout address.',
  usage: 'fleet join FILE [--set-payout] [--rpc URL] [--escrow ADDRESS] [--data-dir DIR] [--config FILE]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'set-payout': { type: 'boolean', default: false },
        rpc: { type: 'string' },
        escrow: { type: 'string' },
        config: { type: 'string' },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const file = positionals[0]
    if (file == null) throw usage('FILE is required: the join file "gpumesh fleet add" wrote for this host.')
    const path = isAbsolute(file) ? file : resolve(ctx.cwd, file)
    let join_
    try {
      if ((await stat(path)).size > 64 * 1024) throw new Error('the file is too large')
      join_ = joinFileSchema.parse(JSON.parse(await readFile(path, 'utf8')))
    } catch (err) {
      throw new CliError('BAD_JOIN_FILE', `${path} is not a join file from "gpumesh fleet add" (${(err as Error).message.slice(0, 200)}). Ask the operator for it again.`, { cause: err })
    }
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const config = await loadProviderConfig(ctx, { config: values.config, dataDir: values['data-dir'] })
    const membership = join_.membership
    const peerKeyPath = join(dataDir, PEER_KEY_FILE)
    let peerId: string
    let address: string
    try {
      peerId = peerIdFromPrivateKey(peerKeyFromBytes(await readFile(peerKeyPath))).toString()
      address = (JSON.parse(await readFile(join(dataDir, KEYSTORE_FILE), 'utf8')) as { address?: string }).address ?? ''
    } catch (err) {
      throw new CliError('NO_IDENTITY', `No identity in ${dataDir}. Run "gpumesh init --data-dir ${dataDir}" first.`, { cause: err })
    }
    try {
      verifyFleetMembership(membership, marketDomain(BigInt(config.pricing.chainId)))
    } catch (err) {
      throw new CliError('BAD_MEMBERSHIP', `The membership in ${path} is not signed by its operator ${membership.operator} for chain ${config.pricing.chainId} (pricing.chainId). Ask the operator to add this host again with the fleet's chain.`, { cause: err })
    }
    if (membership.peerId !== peerId || membership.member.toLowerCase().slice(2) !== address.toLowerCase().replace(/^0x/, '')) {
      throw new CliError('NOT_THIS_HOST', `The membership in ${path} is for peer ${membership.peerId} and address ${membership.member}, not this host (${peerId}, 0x${address.replace(/^0x/, '')}). Ask the operator for this host's file.`)
    }
    if (membership.expiresAt <= Date.now()) throw new CliError('EXPIRED', `The membership in ${path} expired at ${new Date(membership.expiresAt).toISOString()}. Ask the operator to run "gpumesh fleet renew".`)
    await writeAside(join(dataDir, MEMBERSHIP_FILE), JSON.stringify(membership, null, 2) + '\n', 0o644)
    const configPath = values.config != null ? (isAbsolute(values.config) ? values.config : resolve(ctx.cwd, values.config)) : join(dataDir, CONFIG_FILE)
    let configNote: string
    if (config.offers.fleetMembership === MEMBERSHIP_FILE) {
      configNote = `${configPath} already names it (offers.fleetMembership).`
    } else {
      const text = await readFile(configPath, 'utf8').catch(() => '')
      const doc = parseDocument(text)
      if (!isDocument(doc) || doc.errors.length > 0) throw new CliError('BAD_CONFIG', `${configPath} is not valid YAML; set offers.fleetMembership: ${MEMBERSHIP_FILE} there by hand.`)
      doc.setIn(['offers', 'fleetMembership'], MEMBERSHIP_FILE)
      await writeAside(configPath, doc.toString(), 0o644)
      configNote = `Set offers.fleetMembership: ${MEMBERSHIP_FILE} in ${configPath}.`
    }
    const lines = [
      `Joined fleet "${join_.fleet}" (operator ${membership.operator}) until ${new Date(membership.expiresAt).toISOString()}.`,
      configNote
    ]
    if (values['set-payout']) {
      const target = resolveChainTarget(ctx, { rpc: values.rpc, escrow: values.escrow }, {
        ...(config.settlement.rpcUrl != null ? { rpcUrl: config.settlement.rpcUrl } : {}),
        ...(config.settlement.escrowAddress != null ? { escrow: config.settlement.escrowAddress as Address } : {})
      })
      const password = await obtainPassword(ctx, { confirm: false, allowEmpty: true })
      const identity = await loadIdentity(dataDir, password)
      const client = new EscrowClient({ rpcUrl: target.rpcUrl, escrow: target.escrow, privateKey: identity.wallet.privateKey })
      try {
        const tx = await client.setPayoutAddress(join_.payout)
        lines.push(`This host is now paid into the fleet's payout address ${join_.payout} (transaction ${tx.txHash}).`)
      } finally {
        client.close()
      }
    } else {
      lines.push(`To be paid into the fleet's payout address ${join_.payout}, run this again with --set-payout (one transaction).`)
    }
    lines.push('Restart the provider for its offers to carry the membership.', '')
    ctx.stdout(lines.join('\n'))
    return EXIT.OK
  }
}

export const fleetRenewCommand: Command = {
  name: 'fleet renew',
  summary: 'Re-sign every membership that expires soon (all at once) and rewrite the join files.',
  usage: `fleet renew [--days D] [--within DAYS (default ${RENEW_WITHIN_DAYS})] [--all] [--json] [--data-dir DIR]`,
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        days: { type: 'string', default: String(DEFAULT_DAYS) },
        within: { type: 'string', default: String(RENEW_WITHIN_DAYS) },
        all: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const days = daysOption(values.days)
    const within = daysOption(values.within)
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const fleet = await readFleetFile(dataDir)
    const key = await operatorKey(ctx, dataDir, fleet)
    const horizon = Date.now() + within * DAY_MS
    const renewed: Array<{ peerId: string, name: string, expiresAt: number, joinFile: string }> = []
    for (const m of fleet.members) {
      if (!values.all && m.expiresAt > horizon) continue
      m.membership = signMember(fleet, key, m, days)
      m.expiresAt = m.membership.expiresAt
      renewed.push({ peerId: m.peerId, name: m.name, expiresAt: m.expiresAt, joinFile: await writeJoinFile(dataDir, fleet, m) })
    }
    await writeFleetFile(dataDir, fleet)
    if (values.json) ctx.stdout(JSON.stringify({ renewed }) + '\n')
    else {
      ctx.stdout(renewed.length === 0
        ? `No membership expires within ${within} days; nothing to renew (--all renews every one).\n`
        : `Renewed ${renewed.length} membership${renewed.length === 1 ? '' : 's'} until ${new Date(renewed[0]?.expiresAt ?? 0).toISOString()}. Copy each join file in ${join(dataDir, FLEET_JOIN_DIR)} to its host and run "gpumesh fleet join FILE" there.\n`)
    }
    return EXIT.OK
  }
}

/** A node that can dial the fleet and, through the bootstrap peers, reach the gossip mesh. */
async function operatorNode (fleet: FleetFile, extra: string[]): Promise<GpumeshNode> {
  const bootstrap = [...fleet.bootstrap, ...extra]
  return await createNode({ listen: [], bootstrap, connectionMonitor: { enabled: false } })
}

/**
 * Publishes every revocation of the fleet (matchers keep them in memory: the operator re-publishes).
 * Waits a little for a subscriber; returns how many were published, 0 when no matcher was reachable.
 */
async function publishRevocations (node: GpumeshNode, fleet: FleetFile, signal: AbortSignal, waitMs: number): Promise<number> {
  if (fleet.revocations.length === 0) return 0
  const pubsub = node.services.pubsub
  pubsub.subscribe(FLEET_REVOCATIONS_TOPIC)
  const deadline = Date.now() + waitMs
  while (pubsub.getSubscribers(FLEET_REVOCATIONS_TOPIC).length === 0) {
    if (Date.now() > deadline || signal.aborted) return 0
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  let published = 0
  for (const r of fleet.revocations) {
    try {
      await publish(node, FLEET_REVOCATIONS_TOPIC, encodeFleetRevocation(r))
      published++
    } catch (err) {
      if ((err as { code?: string }).code !== 'DUPLICATE') throw err
    }
  }
  return published
}

export const fleetRevokeCommand: Command = {
  name: 'fleet revoke',
  summary: 'Withdraw a host from the fleet: a signed revocation, kept in the fleet file and published to matchers.',
  usage: 'fleet revoke PEER_ID [--bootstrap MULTIADDR]... [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { bootstrap: { type: 'string', multiple: true }, json: { type: 'boolean', default: false }, 'data-dir': { type: 'string' } },
      strict: true
    })
    const peerId = peerIdOption(positionals[0], 'PEER_ID')
    const extra = multiaddrsOption(values.bootstrap, '--bootstrap')
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const fleet = await readFleetFile(dataDir)
    const key = await operatorKey(ctx, dataDir, fleet)
    if (!fleet.revocations.some((r) => r.peerId === peerId)) {
      fleet.revocations.push(signFleetRevocation({ operator: fleet.operator, peerId, revokedAt: Date.now() }, key, fleet.chainId))
    }
    fleet.members = fleet.members.filter((m) => m.peerId !== peerId)
    await writeFleetFile(dataDir, fleet)
    const node = await operatorNode(fleet, extra)
    let published: number
    try {
      published = await publishRevocations(node, fleet, ctx.signal, PUBLISH_WAIT_MS)
    } finally {
      await node.stop()
    }
    if (values.json) ctx.stdout(JSON.stringify({ peerId, published: published > 0 }) + '\n')
    else {
      ctx.stdout(published > 0
        ? `Revoked ${peerId}: published to the matchers, which drop its offers now and refuse them from here on.\n`
        : `Revoked ${peerId} in the fleet file, but no matcher was reachable to publish it to; pass --bootstrap MULTIADDR (a matcher) and run this again. "gpumesh fleet status" also re-publishes it.\n`)
    }
    return published > 0 ? EXIT.OK : EXIT.FAILURE
  }
}

interface StatusRow {
  peerId: string
  name: string
  reachable: boolean
  /** When this host was last seen answering (this run, or an earlier one). */
  since: number | null
  answer: FleetStatus | null
  error: string | null
}

export const fleetStatusCommand: Command = {
  name: 'fleet status',
  summary: 'Ask every member at once and print one table: reachable, GPUs by state, leases, earnings, last error, version.',
  usage: `fleet status [--json] [--timeout-ms MS (default ${DEFAULT_FLEET_TIMEOUT_MS})] [--concurrency N (default ${DEFAULT_FLEET_CONCURRENCY})] [--decimals D] [--data-dir DIR]`,
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean', default: false },
        'timeout-ms': { type: 'string', default: String(DEFAULT_FLEET_TIMEOUT_MS) },
        concurrency: { type: 'string', default: String(DEFAULT_FLEET_CONCURRENCY) },
        decimals: { type: 'string', default: '6' },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const timeoutMs = Number(values['timeout-ms'])
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 120_000) throw usage('--timeout-ms must be a whole number from 100 to 120000.')
    const concurrency = Number(values.concurrency)
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) throw usage('--concurrency must be a whole number from 1 to 256.')
    const decimals = Number(values.decimals)
    if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) throw usage('--decimals must be an integer from 0 to 36.')
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const fleet = await readFleetFile(dataDir)
    const key = await operatorKey(ctx, dataDir, fleet)
    const seenPath = join(dataDir, 'fleet-seen.json')
    const seen = await readSeen(seenPath)
    const node = await operatorNode(fleet, [])
    let answers: Array<FleetAnswer<FleetStatus>>
    try {
      answers = await askFleet('status', { node, operatorKey: key, chainId: fleet.chainId, members: fleet.members, concurrency, timeoutMs, signal: ctx.signal })
      // Revocations live in matchers' memory: every status run re-publishes them (best effort).
      await publishRevocations(node, fleet, ctx.signal, 1_000).catch(() => 0)
    } finally {
      await node.stop()
    }
    const now = Date.now()
    const rows: StatusRow[] = fleet.members.map((m, i) => {
      const a = answers[i]
      const ok = a?.ok === true
      const prev = seen[m.peerId]
      // "since": reachable since the first answer of this streak; unreachable since the last answer seen.
      const since = ok ? (prev?.reachable === true ? prev.since : now) : (prev?.lastSeen ?? null)
      seen[m.peerId] = { reachable: ok, since: since ?? now, lastSeen: ok ? now : (prev?.lastSeen ?? null) }
      return { peerId: m.peerId, name: m.name, reachable: ok, since, answer: ok && a.ok ? a.value : null, error: a != null && !a.ok ? `${a.code}: ${a.error}` : null }
    })
    await writeAside(seenPath, JSON.stringify(seen) + '\n', 0o600).catch(() => {})
    if (values.json) {
      ctx.stdout(JSON.stringify({ fleet: fleet.name, operator: fleet.operator, payout: fleet.payout, members: rows, totals: totals(rows) }, jsonReplacer, 2) + '\n')
    } else {
      ctx.stdout(renderStatus(fleet, rows, decimals))
    }
    return EXIT.OK
  }
}

async function readSeen (path: string): Promise<Record<string, { reachable: boolean, since: number, lastSeen: number | null }>> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as unknown
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, { reachable: boolean, since: number, lastSeen: number | null }> : {}
  } catch {
    return {}
  }
}

function totals (rows: StatusRow[]): { hosts: number, reachable: number, gpus: Record<string, number>, activeLeases: number, outstanding: bigint, redeemed: bigint } {
  const gpus: Record<string, number> = {}
  let activeLeases = 0
  let outstanding = 0n
  let redeemed = 0n
  for (const r of rows) {
    if (r.answer == null) continue
    for (const g of r.answer.gpus) gpus[g.state] = (gpus[g.state] ?? 0) + g.count
    activeLeases += r.answer.activeLeases
    for (const e of r.answer.earnings) { outstanding += e.outstanding; redeemed += e.redeemed }
  }
  return { hosts: rows.length, reachable: rows.filter((r) => r.reachable).length, gpus, activeLeases, outstanding, redeemed }
}

const gpuText = (gpus: Record<string, number> | Array<{ state: string, count: number }>): string => {
  const list = Array.isArray(gpus) ? gpus : Object.entries(gpus).map(([state, count]) => ({ state, count }))
  return list.length === 0 ? '-' : list.map((g) => `${g.count} ${g.state}`).join(', ')
}

function renderStatus (fleet: FleetFile, rows: StatusRow[], decimals: number): string {
  if (rows.length === 0) return `Fleet "${fleet.name}" has no members yet; add hosts with "gpumesh fleet add".\n`
  const when = (t: number | null): string => t == null ? 'never seen' : new Date(t).toISOString().slice(0, 19) + 'Z'
  const header = ['HOST', 'PEER', 'REACHABLE', 'GPUS', 'LEASES', 'OUTSTANDING', 'REDEEMED', 'VERSION', 'LAST ERROR']
  const table = rows.map((r) => {
    const a = r.answer
    const sum = (f: 'outstanding' | 'redeemed'): bigint => a == null ? 0n : a.earnings.reduce((s, e) => s + e[f], 0n)
    return [
      r.name,
      `…${r.peerId.slice(-10)}`,
      r.reachable ? `yes, since ${when(r.since)}` : `NO (last seen ${when(r.since)})`,
      a == null ? '-' : gpuText(a.gpus),
      a == null ? '-' : String(a.activeLeases),
      a == null ? '-' : formatAmount(sum('outstanding'), decimals),
      a == null ? '-' : formatAmount(sum('redeemed'), decimals),
      a == null ? '-' : a.version,
      r.reachable ? (a?.lastError?.message ?? a?.offerProblem ?? '-') : (r.error ?? '-')
    ]
  })
  const t = totals(rows)
  return [
    `Fleet "${fleet.name}", operator ${fleet.operator}, payout ${fleet.payout}`,
    renderTable(header, table),
    '',
    `${t.reachable} of ${t.hosts} hosts reachable; GPUs: ${gpuText(t.gpus)}; ${t.activeLeases} active lease${t.activeLeases === 1 ? '' : 's'}; outstanding ${formatAmount(t.outstanding, decimals)}, redeemed ${formatAmount(t.redeemed, decimals)}.`,
    ''
  ].join('\n')
}

export const fleetSettleCommand: Command = {
  name: 'fleet settle',
  summary: 'Collect every member\'s newest vouchers and redeem them in one transaction into the fleet\'s payout address.',
  usage: 'fleet settle --rpc URL --escrow ADDRESS [--dry-run] [--json] [--timeout-ms MS] [--decimals D] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        rpc: { type: 'string' },
        escrow: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'timeout-ms': { type: 'string', default: String(DEFAULT_FLEET_TIMEOUT_MS) },
        decimals: { type: 'string', default: '6' },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const timeoutMs = Number(values['timeout-ms'])
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 120_000) throw usage('--timeout-ms must be a whole number from 100 to 120000.')
    const decimals = Number(values.decimals)
    if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) throw usage('--decimals must be an integer from 0 to 36.')
    const target = resolveChainTarget(ctx, { rpc: values.rpc, escrow: values.escrow })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const fleet = await readFleetFile(dataDir)
    const key = await operatorKey(ctx, dataDir, fleet) as { privateKey: string }
    const node = await operatorNode(fleet, [])
    let answers
    try {
      answers = await askFleet('vouchers', { node, operatorKey: key, chainId: fleet.chainId, members: fleet.members, timeoutMs, signal: ctx.signal })
    } finally {
      await node.stop()
    }
    const client = new EscrowClient({ rpcUrl: target.rpcUrl, escrow: target.escrow, privateKey: key.privateKey })
    let report
    try {
      report = await settleFleet({ answers, client, payout: fleet.payout, dryRun: values['dry-run'], signal: ctx.signal })
    } finally {
      client.close()
    }
    const nameOf = new Map(fleet.members.map((m) => [m.peerId, m.name]))
    if (values.json) {
      ctx.stdout(JSON.stringify({ ...report, txHash: report.result?.txHash ?? null }, jsonReplacer, 2) + '\n')
    } else {
      const lines: string[] = []
      if (report.sent.length === 0) lines.push('Nothing to redeem: the escrow already paid every voucher the members hold.')
      else {
        lines.push(`${values['dry-run'] ? 'Would redeem' : 'Redeemed'} ${report.sent.length} voucher${report.sent.length === 1 ? '' : 's'} of ${Object.keys(report.paidByMember).length} member(s) in one transaction${report.result != null ? ` (${report.result.txHash})` : ''}: ${formatAmount(report.paid, decimals)} into ${fleet.payout}.`)
        for (const [peerId, paid] of Object.entries(report.paidByMember)) lines.push(`  ${nameOf.get(peerId) ?? peerId}  ${formatAmount(paid, decimals)}`)
        lines.push('Each member records what the chain paid at its next "gpumesh settle onchain".')
      }
      for (const u of report.unreachable) lines.push(`Not reached: ${nameOf.get(u.peerId) ?? u.peerId} (${u.error}); its vouchers wait for the next run.`)
      for (const s of report.skipped) lines.push(`Left out: ${nameOf.get(s.peerId) ?? s.peerId}${s.leaseId != null ? ` lease ${s.leaseId}` : ''}: ${s.reason}.`)
      ctx.stdout(lines.join('\n') + '\n')
    }
    return EXIT.OK
  }
}
