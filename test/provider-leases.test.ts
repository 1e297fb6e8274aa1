import { randomBytes } from 'node:crypto'
import { RequestError, request, type GpumeshNode } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, decodeLeaseDecision, encodeLeaseProposal, marketDomain, toWire, verifyLeaseTerms, type LeaseDecision,
  type LeaseRejectCode, type LeaseProposal
} from '@gpumesh/protocol'
import { toJson } from '@gpumesh/provider'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  PRICE, dialProvider, encodeProposal, newRenter, proposal, requirements, signedOrder, startClient, startProvider,
  type Renter, type TestProvider
} from './provider-helpers.js'

async function send (client: GpumeshNode, target: TestProvider, bytes: Uint8Array): Promise<LeaseDecision> {
  const node = target.provider.node
  if (node == null) throw new Error('provider not started')
  return decodeLeaseDecision(await request(client, node.peerId, LEASE_PROTOCOL, bytes))
}

function rejected (decision: LeaseDecision): LeaseRejectCode | 'ACCEPTED' {
  return decision.accepted ? 'ACCEPTED' : decision.code
}

describe('lease acceptance over libp2p', () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let flooder: GpumeshNode
  let renter: Renter
  const blocked = newRenter()

  beforeAll(async () => {
    ;[client, flooder] = await Promise.all([startClient(), startClient()])
    daemon = await startProvider({
      gpus: 8,
      config: {
        leases: {
          denyRenters: [blocked.address],
          // Only a matcher that is not `client` is trusted: `client` is heard only for its own orders.
          trustedMatchers: ['12D3KooWGzh6Sr4AQHmmJYT7HtjLxaD2PRcCqq2SsQ8mMPV9bQMa'],
          maxConcurrent: 2,
          proposalsPerMinutePerPeer: 40
        }
      }
    })
    renter = newRenter()
    await dialProvider(client, daemon.provider)
  })

  afterAll(async () => {
    await Promise.all([client?.stop(), flooder?.stop()])
    await daemon?.stop()
  })

  const own = (overrides: Parameters<typeof signedOrder>[2] = {}): ReturnType<typeof signedOrder> =>
    signedOrder(renter, client.peerId.toString(), overrides)

  it('accepts a valid proposal with terms signed by the payment key, reserving GPUs by UUID', async () => {
    const decision = await send(client, daemon, encodeProposal(proposal(own())))
    expect(decision.accepted).toBe(true)
    if (!decision.accepted) return
    expect(verifyLeaseTerms(decision.terms, decision.signature, marketDomain(31337n))).toBe(daemon.provider.paymentAddress)
    expect(decision.terms.gpus).toHaveLength(1)
    expect(decision.terms.providerPeerId).toBe(daemon.provider.peerId)
    expect(decision.terms.startDeadline).toBeGreaterThan(decision.terms.acceptedAt)
    const lease = daemon.provider.ledger.getLease(decision.terms.leaseId)
    expect(lease?.state).toBe('accepted')
    expect(lease?.gpus).toEqual(decision.terms.gpus)
    expect(JSON.parse(lease?.terms ?? '{}')).toEqual(toWire({ terms: decision.terms, signature: decision.signature }))
  })

  it('answers every reason code for a crafted proposal, in the documented order', async () => {
    const cases: Array<[LeaseRejectCode, () => Uint8Array]> = [
      ['MALFORMED', () => new TextEncoder().encode('{"type":"lease-proposal","order":{}}')],
      ['MALFORMED', () => encodeProposal(proposal(own(), { pricePerGpuHour: PRICE * 3n }))],
      ['BAD_SIGNATURE', () => {
        const p = proposal(own())
        const wire = toWire(p) as { order: { durationSec: number } }
        wire.order.durationSec += 1 // signed over other data
        return new TextEncoder().encode(JSON.stringify(wire))
      }],
      ['BAD_SIGNATURE', () => {
        const p = proposal(own())
        return encodeLeaseProposal({ ...p, order: { ...p.order, renter: newRenter().address } })
      }],
      ['EXPIRED', () => encodeProposal(proposal(own({ expiresAt: Date.now() - 1 })))],
      ['RENTER_BLOCKED', () => encodeProposal(proposal(signedOrder(blocked, client.peerId.toString())))],
      ['MATCHER_NOT_TRUSTED', () => encodeProposal(proposal(signedOrder(newRenter(), flooder.peerId.toString())))],
      ['PRICE_TOO_LOW', () => encodeProposal(proposal(own(), { pricePerGpuHour: PRICE - 1n }))],
      ['UNSUPPORTED_REQUIREMENTS', () => encodeProposal(proposal(own({ requirements: requirements({ allowSimulated: false }) })))],
      ['UNSUPPORTED_REQUIREMENTS', () => encodeProposal(proposal(own({ requirements: requirements({ classes: ['A100-SXM4-80GB'] }) }), { gpuClass: 'A100-SXM4-80GB' }))],
      ['UNSUPPORTED_REQUIREMENTS', () => encodeProposal(proposal(own({ requirements: requirements({ gpuCount: 9 }) })))],
      ['UNSUPPORTED_REQUIREMENTS', () => encodeProposal(proposal(own({ durationSec: 30 })))],
      ['UNSUPPORTED_REQUIREMENTS', () => encodeProposal(proposal(own({ chainId: 1n })))],
      ['UNSUPPORTED_REQUIREMENTS', () => encodeProposal(proposal(own({ requirements: requirements({ minComputeCapability: '10.0' }) })))],
      ['NO_CAPACITY', () => encodeProposal(proposal(own({ requirements: requirements({ gpuCount: 8 }) })))]
    ]
    for (const [code, make] of cases) {
      expect.soft(rejected(await send(client, daemon, make())), code).toBe(code)
    }

    // REPLAY: the same order accepted once is refused afterwards, even with a higher price.
    const order = own()
    expect(rejected(await send(client, daemon, encodeProposal(proposal(order))))).toBe('ACCEPTED')
    expect(rejected(await send(client, daemon, encodeProposal(proposal(order, { pricePerGpuHour: PRICE + 1n }))))).toBe('REPLAY')

    // Two leases are active now (leases.maxConcurrent = 2): one more is TOO_MANY_LEASES, while a
    // request for more GPUs than are free is NO_CAPACITY first.
    expect(daemon.provider.ledger.activeLeases()).toHaveLength(2)
    expect(rejected(await send(client, daemon, encodeProposal(proposal(own({ requirements: requirements({ gpuCount: 7 }) })))))).toBe('NO_CAPACITY')
    expect(rejected(await send(client, daemon, encodeProposal(proposal(own()))))).toBe('TOO_MANY_LEASES')

    // Rejections of signed proposals are logged in the ledger; malformed ones are not.
    const codes = new Set(daemon.provider.ledger.listRejections().map((r) => r.code))
    expect(codes.has('REPLAY') && codes.has('PRICE_TOO_LOW') && codes.has('TOO_MANY_LEASES')).toBe(true)
    expect(codes.has('MALFORMED')).toBe(false)
  })

  it('cuts a flooding peer off with RATE_LIMITED before any other check', async () => {
    await dialProvider(flooder, daemon.provider)
    const junk = new TextEncoder().encode('not json')
    const answers: string[] = []
    for (let i = 0; i < 45; i++) answers.push(rejected(await send(flooder, daemon, junk)))
    expect(answers.slice(0, 40).every((c) => c === 'MALFORMED')).toBe(true)
    expect(answers.slice(40).every((c) => c === 'RATE_LIMITED')).toBe(true)
    // Another peer is still served.
    expect(rejected(await send(client, daemon, junk))).toBe('MALFORMED')
  })

  it('answers TOO_LARGE for a proposal over 16 KiB without reading it', async () => {
    const err = await send(client, daemon, randomBytes(20 * 1024)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RequestError)
    expect((err as RequestError).remoteCode).toBe('TOO_LARGE')
  })
})

describe('concurrency and hostile input', () => {
  let daemon: TestProvider
  const clients: GpumeshNode[] = []

  beforeAll(async () => {
    daemon = await startProvider({ gpus: 8, config: { leases: { maxConcurrent: 1024, proposalsPerMinutePerPeer: 1000 } } })
    clients.push(...await Promise.all(Array.from({ length: 4 }, startClient)))
    await Promise.all(clients.map(async (c) => { await dialProvider(c, daemon.provider) }))
  })

  afterAll(async () => {
    await Promise.all(clients.map(async (c) => c.stop()))
    await daemon?.stop()
  })

  it('200 concurrent valid proposals for 8 GPUs reserve exactly 8 GPUs, none twice', async () => {
    const proposals: Array<[GpumeshNode, LeaseProposal]> = []
    for (let i = 0; i < 200; i++) {
      const client = clients[i % clients.length] as GpumeshNode
      proposals.push([client, proposal(signedOrder(newRenter(), client.peerId.toString()))])
    }
    const decisions = await Promise.all(proposals.map(async ([client, p]) => send(client, daemon, encodeProposal(p))))
    const accepted = decisions.filter((d) => d.accepted)
    const gpus = accepted.flatMap((d) => (d.accepted ? d.terms.gpus : []))
    expect(accepted).toHaveLength(8)
    expect(new Set(gpus).size).toBe(8)
    expect(decisions.filter((d) => !d.accepted).every((d) => !d.accepted && d.code === 'NO_CAPACITY')).toBe(true)
    const ledger = daemon.provider.ledger
    expect(ledger.activeLeases()).toHaveLength(8)
    expect(new Set(ledger.activeLeases().flatMap((l) => l.gpus)).size).toBe(8)
    expect(ledger.listGpus().filter((g) => g.state === 'reserved')).toHaveLength(8)
  })

  it('random bytes on the lease protocol leave the daemon serving and the ledger unchanged', async () => {
    const ledger = daemon.provider.ledger
    const before = toJson({ leases: ledger.listLeases(), gpus: ledger.listGpus().map((g) => [g.uuid, g.state]), rejections: ledger.listRejections().length })
    const client = clients[0] as GpumeshNode
    for (let i = 0; i < 40; i++) {
      // Every fourth starts like a proposal, so the JSON parser gets past the first byte.
      const prefix = i % 4 === 0 ? new TextEncoder().encode('{"type":"lease-proposal",') : new Uint8Array(0)
      const bytes = randomBytes(prefix.length + 1 + Math.floor(Math.random() * 4000))
      bytes.set(prefix)
      const decision = await send(client, daemon, bytes)
      expect(rejected(decision)).toBe('MALFORMED')
    }
    const after = toJson({ leases: ledger.listLeases(), gpus: ledger.listGpus().map((g) => [g.uuid, g.state]), rejections: ledger.listRejections().length })
    expect(after).toBe(before)
    // Still serving: a valid proposal gets a real answer (no capacity left after the test above).
    const decision = await send(client, daemon, encodeProposal(proposal(signedOrder(newRenter(), client.peerId.toString()))))
    expect(rejected(decision)).toBe('NO_CAPACITY')
  })
})
