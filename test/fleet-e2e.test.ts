/**
 * Fleets end to end on 127.0.0.1: an operator vouches for three provider hosts (real daemons, real
 * libp2p nodes, one process); a matcher groups them under the operator and an order asking for the
 * operator lands on one of them; forged and expired memberships never enter the book; `fleet status`
 * over the authenticated fleet protocol answers for the three (only to the operator) and shows a
 * stopped host as unreachable; a revoked host's offer leaves the book at once and stays out after the
 * host restarts with its old membership; the built `gpumesh fleet revoke` publishes through a matcher.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet, encryptKeystoreJson } from 'ethers'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createMatcher, type Matcher, type OfferVerdict } from '@gpumesh/matcher'
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { createNode, generatePeerKey, peerKeyToBytes, publish, request, type GpumeshNode } from '@gpumesh/net'
import {
  FLEET_PROTOCOL, FLEET_REVOCATIONS_TOPIC, OFFERS_TOPIC, bytesToHex, decodeFleetVouchers, encodeFleetRequest, encodeFleetRevocation, signFleetRequest, type Bytes32, encodeOffer, marketDomain, paymentKeyAddress,
  signFleetMembership, signFleetRevocation, signOffer, signPeerBinding, type Address, type FleetMembership, type FleetRevocationVerdict, type Offer
} from '@gpumesh/protocol'
import { askFleet } from '@gpumesh/provider'
import { runCli } from './cli-helpers.js'
import { placeOrder, readBook } from '@gpumesh/renter'
import { CHAIN_ID, newRenter, requirements, signedOrder, startProvider, tempDir, type TestProvider } from './provider-helpers.js'

const DOMAIN = marketDomain(CHAIN_ID)
const DAY = 24 * 3600 * 1000

interface Host {
  name: string
  peerKey: Awaited<ReturnType<typeof generatePeerKey>>
  paymentKey: string
  dir: { dir: string, remove: () => Promise<void> }
  daemon: TestProvider | null
  peerId: string
}

function membershipFor (operatorKey: string, host: { peerId: string, paymentKey: string }, expiresAt: number): FleetMembership {
  const fields = { operator: paymentKeyAddress(operatorKey), member: paymentKeyAddress(host.paymentKey), peerId: host.peerId, expiresAt }
  return { ...fields, proof: signFleetMembership(fields, operatorKey, DOMAIN) }
}

describe('a fleet of three hosts under one operator', () => {
  const operatorKey = Wallet.createRandom().privateKey
  const operator = paymentKeyAddress(operatorKey)
  let matcher: Matcher
  let matcherAddrs: string[]
  const verdicts: OfferVerdict[] = []
  const revocationVerdicts: FleetRevocationVerdict[] = []
  const hosts: Host[] = []
  let outsider: TestProvider
  let opNode: GpumeshNode

  const startHost = async (host: Host): Promise<void> => {
    host.daemon = await startProvider({
      gpus: 2,
      dataDir: host.dir.dir,
      peerKey: host.peerKey,
      paymentKey: host.paymentKey,
      config: { network: { bootstrap: matcherAddrs }, offers: { fleetMembership: 'fleet-membership.json' } }
    })
  }

  beforeAll(async () => {
    matcher = createMatcher({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, pruneIntervalMs: 200 }, { onOfferVerdict: (v) => verdicts.push(v), onRevocationVerdict: (v) => revocationVerdicts.push(v) })
    await matcher.start()
    matcherAddrs = matcher.node.getMultiaddrs().map(String)
    for (const name of ['rack1-a', 'rack1-b', 'rack2-a']) {
      const peerKey = await generatePeerKey()
      const host: Host = { name, peerKey, paymentKey: Wallet.createRandom().privateKey, dir: await tempDir(), daemon: null, peerId: peerIdFromPrivateKey(peerKey).toString() }
      // What "gpumesh fleet add" signs and "gpumesh fleet join" installs.
      await writeFile(join(host.dir.dir, 'fleet-membership.json'), JSON.stringify(membershipFor(operatorKey, host, Date.now() + 30 * DAY)))
      hosts.push(host)
    }
    await Promise.all(hosts.map(startHost))
    outsider = await startProvider({ gpus: 2, config: { network: { bootstrap: matcherAddrs } } })
    opNode = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, bootstrap: matcherAddrs })
    await vi.waitFor(() => { expect(hosts.every((h) => matcher.book.has(h.peerId)) && matcher.book.has(outsider.provider.peerId ?? '')).toBeTruthy() }, { timeout: 20_000 })
  }, 60_000)

  afterAll(async () => {
    await opNode?.stop()
    await Promise.all(hosts.map(async (h) => { await h.daemon?.stop(); await h.dir.remove() }))
    await outsider?.stop()
    await matcher?.stop()
  })

  const members = (): Array<{ peerId: string, addresses: string[] }> => hosts.map((h) => ({ peerId: h.peerId, addresses: h.daemon?.provider.addresses() ?? [] }))

  it('the matcher groups the three under the operator; the book query filters by it', async () => {
    const filters = { gpuClass: null, minGpus: null, minMemoryMiB: null, maxPricePerGpuHour: null, region: null, operator, includeSimulated: true }
    const { offers } = await readBook({ node: opNode, matcher: matcherAddrs, filters })
    expect(offers.map((o) => o.peerId).sort()).toEqual(hosts.map((h) => h.peerId).sort())
    expect(offers.every((o) => o.fleet?.operator === operator)).toBe(true)
    const all = await readBook({ node: opNode, matcher: matcherAddrs, filters: { ...filters, operator: null } })
    expect(all.offers.map((o) => o.peerId)).toContain(outsider.provider.peerId)

    // The built CLI: `gpumesh offers --operator` lists the fleet's hosts, each under its operator.
    const listed = await runCli(['offers', '--matcher', matcherAddrs[0] ?? '', '--operator', operator, '--include-simulated', '--json'])
    expect(listed.code, listed.stderr).toBe(0)
    const fromCli = JSON.parse(listed.stdout) as Array<{ peerId: string, fleet: { operator: string } | null }>
    expect(fromCli.map((o) => o.peerId).sort()).toEqual(hosts.map((h) => h.peerId).sort())
    expect(fromCli.every((o) => o.fleet?.operator === operator)).toBe(true)
    const table = await runCli(['offers', '--matcher', matcherAddrs[0] ?? '', '--include-simulated'])
    expect(table.stdout).toContain('from 1 fleet operator')
    expect(table.stdout.split('\n').filter((line) => line.includes(operator))).toHaveLength(3)
  }, 60_000)

  it('an order requiring the operator lands on a member, never on the outsider', async () => {
    const renter = newRenter()
    for (let i = 0; i < 2; i++) {
      const order = signedOrder(renter, opNode.peerId.toString(), { requirements: requirements({ operators: [operator] }) })
      const lease = await placeOrder({ node: opNode, matcher: matcherAddrs, order })
      expect(hosts.map((h) => h.peerId)).toContain(lease.providerPeerId)
    }
    const stranger = Wallet.createRandom().address as Address
    const order = signedOrder(renter, opNode.peerId.toString(), { requirements: requirements({ operators: [stranger] }) })
    await expect(placeOrder({ node: opNode, matcher: matcherAddrs, order, attempts: 1 })).rejects.toMatchObject({ code: 'NO_MATCH' })
  })

  it('rejects an offer with a forged membership and ignores one whose membership expired', async () => {
    const rogueKey = await generatePeerKey()
    const rogue = await createNode({ privateKey: rogueKey, listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true, bootstrap: matcherAddrs })
    try {
      rogue.services.pubsub.subscribe(OFFERS_TOPIC)
      await vi.waitFor(() => { expect(rogue.services.pubsub.getSubscribers(OFFERS_TOPIC).map(String)).toContain(matcher.node.peerId.toString()) }, { timeout: 10_000 })
      const rogueId = rogue.peerId.toString()
      const payKey = Wallet.createRandom().privateKey
      const payment = paymentKeyAddress(payKey)
      const template = matcher.book.get(hosts[0]?.peerId ?? '') as Offer
      const offerWith = (fleet: FleetMembership, sequence: number): Uint8Array => {
        const now = Date.now()
        const body = {
          ...template,
          peerId: rogueId,
          binding: { peerId: rogueId, payment, proof: signPeerBinding({ peerId: rogueId, payment }, payKey, DOMAIN) },
          fleet,
          addresses: rogue.getMultiaddrs().map(String),
          sequence,
          issuedAt: now,
          expiresAt: now + 60_000
        }
        return encodeOffer({ ...body, signature: signOffer(body, payKey, DOMAIN) })
      }
      // Claims the operator, signed by someone else.
      const forger = Wallet.createRandom().privateKey
      const forged = { ...membershipFor(forger, { peerId: rogueId, paymentKey: payKey }, Date.now() + DAY), operator }
      await publish(rogue, OFFERS_TOPIC, offerWith(forged, 1))
      await vi.waitFor(() => { expect(verdicts.some((v) => v.author === rogueId && v.reason === 'BAD_SIGNATURE')).toBeTruthy() }, { timeout: 10_000 })
      expect(verdicts.find((v) => v.author === rogueId)?.judgement).toBe('reject')
      // Genuinely signed by the operator, but expired.
      const expired = membershipFor(operatorKey, { peerId: rogueId, paymentKey: payKey }, Date.now() - 1_000)
      await publish(rogue, OFFERS_TOPIC, offerWith(expired, 2))
      await vi.waitFor(() => { expect(verdicts.some((v) => v.author === rogueId && v.reason === 'EXPIRED')).toBeTruthy() }, { timeout: 10_000 })
      expect(matcher.book.has(rogueId)).toBe(false)
    } finally {
      await rogue.stop()
    }
  })

  it('fleet status answers the operator for all three, refuses anyone else, and shows a stopped host unreachable', async () => {
    const answers = await askFleet('status', { node: opNode, operatorKey, chainId: CHAIN_ID, members: members(), timeoutMs: 5_000 })
    expect(answers.map((a) => a.ok)).toEqual([true, true, true])
    for (const a of answers) {
      if (!a.ok) continue
      expect(a.value.gpus.reduce((n, g) => n + g.count, 0)).toBe(2)
      expect(a.value.version).toMatch(/^\d+\.\d+\.\d+/)
    }
    expect(answers.reduce((n, a) => n + (a.ok ? a.value.activeLeases : 0), 0)).toBe(2)

    // Another key — even one that signs a well-formed request — is not this fleet's operator.
    const impostor = await askFleet('status', { node: opNode, operatorKey: Wallet.createRandom().privateKey, chainId: CHAIN_ID, members: members().slice(0, 1) })
    expect(impostor[0]).toMatchObject({ ok: false, code: 'NOT_OPERATOR' })

    // A captured request is worth nothing twice, nor from another peer.
    const target = hosts[0] as Host
    const issuedAt = Date.now()
    const signed = encodeFleetRequest(signFleetRequest({
      kind: 'vouchers', operator, asker: opNode.peerId.toString(), member: target.peerId, nonce: bytesToHex(randomBytes(32)) as Bytes32, issuedAt, expiresAt: issuedAt + 30_000
    }, operatorKey, DOMAIN))
    const addrs = target.daemon?.provider.addresses().map((a) => multiaddr(a)) ?? []
    const first = decodeFleetVouchers(await request(opNode, addrs, FLEET_PROTOCOL, signed))
    expect(first).toMatchObject({ peerId: target.peerId, vouchers: [] })
    await expect(request(opNode, addrs, FLEET_PROTOCOL, signed)).rejects.toMatchObject({ code: 'REMOTE_ERROR', remoteCode: 'REPLAYED' })
    const thief = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })
    try {
      await expect(request(thief, addrs, FLEET_PROTOCOL, signed)).rejects.toMatchObject({ code: 'REMOTE_ERROR', remoteCode: 'WRONG_ASKER' })
    } finally {
      await thief.stop()
    }

    const stopped = hosts[1] as Host
    const addresses = members()
    await stopped.daemon?.stop()
    stopped.daemon = null
    const after = await askFleet('status', { node: opNode, operatorKey, chainId: CHAIN_ID, members: addresses, timeoutMs: 2_000 })
    expect(after.map((a) => a.ok)).toEqual([true, false, true])
    expect(after[1]?.peerId).toBe(stopped.peerId)
  })

  it('a revoked host leaves the book at once and stays out after it restarts with its old membership', async () => {
    const revoked = hosts[2] as Host
    const revocation = signFleetRevocation({ operator, peerId: revoked.peerId, revokedAt: Date.now() }, operatorKey, CHAIN_ID)
    opNode.services.pubsub.subscribe(FLEET_REVOCATIONS_TOPIC)
    await vi.waitFor(() => { expect(opNode.services.pubsub.getSubscribers(FLEET_REVOCATIONS_TOPIC).map(String)).toContain(matcher.node.peerId.toString()) }, { timeout: 10_000 })
    await publish(opNode, FLEET_REVOCATIONS_TOPIC, encodeFleetRevocation(revocation))
    await vi.waitFor(() => { expect(matcher.book.has(revoked.peerId)).toBeFalsy() }, { timeout: 10_000 })
    expect(matcher.revocations?.size).toBe(1)
    expect(matcher.book.has(hosts[0]?.peerId ?? '')).toBe(true)

    await revoked.daemon?.stop()
    const seen = verdicts.length
    await startHost(revoked)
    await vi.waitFor(() => { expect(verdicts.slice(seen).some((v) => v.author === revoked.peerId && v.reason === 'REVOKED')).toBeTruthy() }, { timeout: 20_000 })
    expect(matcher.book.has(revoked.peerId)).toBe(false)

    // A revocation signed by someone other than the operator it names is rejected and changes nothing.
    const fake = signFleetRevocation({ operator, peerId: hosts[0]?.peerId ?? '', revokedAt: Date.now() }, Wallet.createRandom().privateKey, CHAIN_ID)
    await publish(opNode, FLEET_REVOCATIONS_TOPIC, encodeFleetRevocation(fake))
    await vi.waitFor(() => { expect(revocationVerdicts.some((v) => v.reason === 'BAD_SIGNATURE' && v.judgement === 'reject')).toBeTruthy() }, { timeout: 10_000 })
    expect(matcher.revocations?.size).toBe(1)
    expect(matcher.book.has(hosts[0]?.peerId ?? '')).toBe(true)
  }, 40_000)

  it('the built "gpumesh fleet revoke" publishes through the fleet\'s bootstrap matcher', async () => {
    const opDir = await tempDir()
    try {
      await writeFile(join(opDir.dir, 'peer.key'), peerKeyToBytes(await generatePeerKey()), { mode: 0o600 })
      await writeFile(join(opDir.dir, 'payment-key.json'), await encryptKeystoreJson({ address: operator, privateKey: operatorKey }, 'pw', { scrypt: { N: 1 << 10 } }), { mode: 0o600 })
      const env = { ...process.env, GPUMESH_PASSWORD: 'pw', GPUMESH_HOME: opDir.dir }
      const init = await runCli(['fleet', 'init', '--name', 'dc', '--payout', operator, '--bootstrap', matcherAddrs[0] ?? ''], { env })
      expect(init.code, init.stderr).toBe(0)
      const target = hosts[0] as Host
      expect(matcher.book.has(target.peerId)).toBe(true)
      const revoke = await runCli(['fleet', 'revoke', target.peerId], { env })
      expect(revoke.code, revoke.stderr).toBe(0)
      expect(revoke.stdout).toContain('published to the matchers')
      await vi.waitFor(() => { expect(matcher.book.has(target.peerId)).toBeFalsy() }, { timeout: 10_000 })
      expect(matcher.revocations?.size).toBe(2)
    } finally {
      await opDir.remove()
    }
  }, 60_000)
})
