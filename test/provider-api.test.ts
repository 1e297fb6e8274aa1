import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LEASE_PROTOCOL, decodeLeaseDecision, encodeLeaseProposal } from '@gpumesh/protocol'
import { request, type GpumeshNode } from '@gpumesh/net'
import { dialProvider, newRenter, proposal, signedOrder, startClient, startProvider, type TestProvider } from './provider-helpers.js'

describe('provider local API', () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let base: string

  beforeAll(async () => {
    daemon = await startProvider({ gpus: 4 })
    client = await startClient()
    await dialProvider(client, daemon.provider)
    base = daemon.provider.apiUrl() as string
  })

  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
  })

  const get = async (path: string, token: string | null = daemon.provider.apiToken): Promise<Response> =>
    await fetch(base + path, token == null ? {} : { headers: { authorization: `Bearer ${token}` } })

  it('listens on loopback only and refuses requests without the token', async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect((await get('/status', null)).status).toBe(401)
    expect((await get('/status', 'x'.repeat(daemon.provider.apiToken.length))).status).toBe(401)
    expect((await get('/nope')).status).toBe(404)
    const status = await (await get('/status')).json() as { gpus: unknown[] }
    expect(status.gpus).toHaveLength(4)
  })

  it('serves Prometheus metrics that follow the daemon: GPUs by state, proposals by outcome', async () => {
    const before = await (await get('/metrics')).text()
    expect(before).toContain('gpumesh_provider_gpus{state="free",class="H100-SXM-80GB",simulated="true"} 4')
    expect(before).toContain('gpumesh_provider_process_resident_memory_bytes')

    const order = signedOrder(newRenter(), client.peerId.toString(), {})
    const node = daemon.provider.node as GpumeshNode
    const decision = decodeLeaseDecision(await request(client, node.peerId, LEASE_PROTOCOL, encodeLeaseProposal(proposal(order))))
    expect(decision.accepted).toBe(true)
    const replay = decodeLeaseDecision(await request(client, node.peerId, LEASE_PROTOCOL, encodeLeaseProposal(proposal(order))))
    expect(replay).toMatchObject({ accepted: false, code: 'REPLAY' })

    const after = await (await get('/metrics')).text()
    expect(after).toContain('gpumesh_provider_gpus{state="free",class="H100-SXM-80GB",simulated="true"} 3')
    expect(after).toContain('gpumesh_provider_gpus{state="reserved",class="H100-SXM-80GB",simulated="true"} 1')
    expect(after).toContain('gpumesh_provider_proposals_total{outcome="accepted"} 1')
    expect(after).toContain('gpumesh_provider_proposals_total{outcome="REPLAY"} 1')
    expect(after).toContain('gpumesh_provider_leases_active{state="accepted"} 1')
    expect(after).not.toMatch(/0x[0-9a-fA-F]{64}/) // no lease id as a label
  })

  it('counts proposals from the ledger, so a restart keeps them', async () => {
    expect(daemon.provider.status().leaseStats).toEqual({ accepted: 1, rejected: { REPLAY: 1 } })
    await daemon.provider.stop()
    await daemon.provider.start()
    expect(daemon.provider.status().leaseStats).toEqual({ accepted: 1, rejected: { REPLAY: 1 } })
    base = daemon.provider.apiUrl() as string
    expect(await (await get('/metrics')).text()).toContain('gpumesh_provider_proposals_total{outcome="accepted"} 1')
  })
})
