import { ListenError, createNode, generatePeerKey } from '@gpumesh/net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { stopAll } from './nodes.js'
import type { GpumeshNode } from '@gpumesh/net'

const local = { listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true }

describe('discovery', () => {
  const nodes: GpumeshNode[] = []
  afterEach(async () => { await stopAll(nodes) })

  it('says in words which address it could not listen on and why', async () => {
    const holder = await createNode(local)
    nodes.push(holder)
    const taken = holder.getMultiaddrs()[0]?.decapsulate('/p2p').toString() ?? ''
    const err = await createNode({ ...local, listen: [taken] }).then(() => null, (e: unknown) => e)
    expect(err).toBeInstanceOf(ListenError)
    expect((err as ListenError).failures).toEqual([{ address: taken, reason: 'the port is already in use, perhaps by another gpumesh process' }])
    expect((err as ListenError).message).toMatch(/^Cannot listen on \/ip4\/127\.0\.0\.1\/tcp\/\d+ \(the port is already in use/)
  })

  it('connects to its bootstrap peers at start', async () => {
    const hub = await createNode(local)
    nodes.push(hub)
    const leaf = await createNode({ ...local, bootstrap: hub.getMultiaddrs().map(String) })
    nodes.push(leaf)
    // the leaf dials, nobody told it to: both ends see the connection once the upgrade finishes
    await vi.waitFor(() => { expect(leaf.getConnections(hub.peerId).length > 0 && hub.getConnections(leaf.peerId).length > 0).toBeTruthy() }, { timeout: 10_000 })
    expect(leaf.getConnections(hub.peerId)[0]?.direction).toBe('outbound')
  })

  it('dials a bootstrap peer again when it comes back after a restart', async () => {
    const key = await generatePeerKey()
    const hub = await createNode({ ...local, privateKey: key })
    const addr = hub.getMultiaddrs()[0]
    if (addr == null) throw new Error('hub has no address')
    const leaf = await createNode({ ...local, bootstrap: [addr.toString()], bootstrapRedialMs: 200 })
    nodes.push(leaf)
    await vi.waitFor(() => { expect(leaf.getConnections(hub.peerId).length).toBeGreaterThan(0) }, { timeout: 10_000 })
    await hub.stop()
    await vi.waitFor(() => { expect(leaf.getConnections(hub.peerId).length).toBe(0) }, { timeout: 10_000 })
    // Down for a while (redials fail meanwhile), then back on the same address with the same key. The
    // passing time is what is tested (several failed redials must not stop the timer), and real
    // libp2p nodes run on real timers: there is no state to wait on, so this sleep stays.
    await new Promise((resolve) => setTimeout(resolve, 600))
    const back = await createNode({ ...local, listen: [`/ip4/127.0.0.1/tcp/${/\/tcp\/(\d+)/.exec(addr.toString())?.[1] ?? 0}`], privateKey: key })
    nodes.push(back)
    await vi.waitFor(() => { expect(leaf.getConnections(back.peerId).length).toBeGreaterThan(0) }, { timeout: 5_000 })
    expect(leaf.getConnections(back.peerId)[0]?.direction).toBe('outbound')
  })

  it('finds a peer through the private DHT with loopback addresses kept', async () => {
    const [hub, a, b] = await Promise.all([0, 1, 2].map(async () => createNode({ ...local, dht: true })))
    nodes.push(hub as GpumeshNode, a as GpumeshNode, b as GpumeshNode)
    if (hub == null || a == null || b == null) throw new Error('nodes missing')
    expect(hub.getProtocols()).toContain('/gpumesh/kad/1.0.0')
    await a.dial(hub.getMultiaddrs())
    await b.dial(hub.getMultiaddrs())
    // the routing table is not on the public KadDHT type; it fills once identify reports the protocol
    const table = (hub.services.dht as unknown as { routingTable: { size: number } }).routingTable
    await vi.waitFor(() => { expect(table.size).toBeGreaterThanOrEqual(2) }, { timeout: 10_000 })
    const found = await b.peerRouting.findPeer(a.peerId, { signal: AbortSignal.timeout(10_000) })
    expect(found.multiaddrs.map(String).some((addr) => addr.startsWith('/ip4/127.0.0.1/'))).toBe(true)
  })
})
