/**
 * The renter's lease session when its provider stops answering mid-job and does not come back: it
 * re-attaches with growing waits, announcing each attempt, for as long as it was told and no longer,
 * then says the provider is gone (with what was paid). The daemon coming back in time is the crash
 * scenario in jobs-crash.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { request, type GpumeshNode } from '@gpumesh/net'
import { LEASE_PROTOCOL, decodeLeaseDecision, encodeLeaseProposal, type JobEvent } from '@gpumesh/protocol'
import { LeaseStore, newLeaseRecord, runLeasedJob, type GrantedLease, type ReattachAttempt } from '@gpumesh/renter'
import { proposal, requirements, signedOrder, startClient, type TestProvider } from './provider-helpers.js'
import { startJobProvider, trainSpec, trainingBundle } from './jobs-helpers.js'

describe('lease session: a provider that never comes back', () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let scratch: string

  beforeAll(async () => {
    ;[daemon, client] = await Promise.all([startJobProvider(), startClient()])
    scratch = await mkdtemp(join(tmpdir(), 'gpumesh-reattach-'))
  })
  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
  })

  it('re-attaches with growing waits for reattachForMs, saying so, then ends PROVIDER_GONE', async () => {
    const wallet = new Wallet(Wallet.createRandom().privateKey)
    const bundle = await trainingBundle()
    const addresses = daemon.provider.addresses()
    const order = signedOrder({ key: wallet.privateKey, address: wallet.address as `0x${string}` }, client.peerId.toString(), { jobHash: bundle.sha256, requirements: requirements({ gpuCount: 1 }) })
    const decision = decodeLeaseDecision(await request(client, addresses.map((a) => multiaddr(a)), LEASE_PROTOCOL, encodeLeaseProposal(proposal(order))))
    if (!decision.accepted) throw new Error(`lease rejected: ${decision.code}`)
    const lease: GrantedLease = { terms: decision.terms, signature: decision.signature, providerPeerId: daemon.provider.peerId ?? '', providerAddresses: addresses, via: 'provider' }
    const store = new LeaseStore(join(scratch, 'leases'))
    const record = newLeaseRecord(lease, { jobFile: null, tokenDecimals: 6, budget: 10n ** 12n, now: Date.now() })
    const attempts: ReattachAttempt[] = []
    const events: JobEvent[] = []
    const session = runLeasedJob({
      node: client,
      wallet,
      lease,
      spec: trainSpec(600, 100), // a minute of training: it outlives the test
      bundle: { data: bundle.bytes, size: bundle.bytes.length },
      budget: 10n ** 12n,
      store,
      record,
      outDir: join(scratch, 'out'),
      reattachForMs: 4_000,
      onReattach: (a) => { attempts.push(a) },
      onEvent: (e) => { events.push(e) }
    }).then(() => null, (err: unknown) => err)
    await vi.waitFor(() => { expect(events.some((e) => e.kind === 'log')).toBeTruthy() }, { timeout: 15_000 })
    // The provider's node goes away (its job runs on): nothing answers on its addresses any more.
    await daemon.provider.node?.stop()
    const failure = await session
    expect(failure).toMatchObject({ name: 'JobRunError', code: 'PROVIDER_GONE' })
    expect((failure as Error).message).toMatch(/^The provider stopped answering mid-job \(.+\), and re-attaching failed for 4 s\.$/)
    expect(attempts.length).toBeGreaterThanOrEqual(2)
    expect(attempts.map((a) => a.attempt)).toEqual(attempts.map((_, i) => i + 1))
    expect(attempts[0]?.waitMs).toBe(500)
    expect(attempts[1]?.waitMs).toBe(Math.min(1_000, attempts[1]?.leftMs ?? 0))
    for (const a of attempts) expect(a.leftMs).toBeLessThanOrEqual(4_000)
    expect((await store.load(lease.terms.leaseId)).state).toBe('provider-gone')
  }, 40_000)
})
