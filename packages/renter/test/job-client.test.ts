/**
 * The renter's job client against a stand-in provider on 127.0.0.1 that says what the test wants:
 * addresses it dials, a report it must not pay, refusals and a provider that goes away.
 */
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNode, handleFrameStreams, type FrameStream, type GpumeshNode } from '@gpumesh/net'
import {
  JOB_MAX_FRAME_BYTES, JOB_PROTOCOL, ZERO_ADDRESS, cumulativeAmount, decodeMessage, encodeJobEvent, encodeJobReply, marketDomain,
  signUsageReport, type JobEvent, type LeaseTerms, type UsageReport
} from '@gpumesh/protocol'
import { JobClientError, attachJob, cancelJob, providerTargets, submitJob } from '../src/index.js'

const renter = new Wallet('0x' + '33'.repeat(32))
const providerKey = new Wallet('0x' + '11'.repeat(32))
const stranger = new Wallet('0x' + '22'.repeat(32))
const domain = marketDomain(31337n)

type Script = (stream: FrameStream, first: ReturnType<typeof decodeMessage>) => Promise<void>

describe('job client', () => {
  let provider: GpumeshNode
  let client: GpumeshNode
  let script: Script = async () => {}
  const received: string[] = []

  beforeAll(async () => {
    ;[provider, client] = await Promise.all([
      createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true }),
      createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })
    ])
    await handleFrameStreams(provider, JOB_PROTOCOL, async (stream) => {
      const first = await stream.read()
      if (first === null) return
      const message = decodeMessage(first)
      received.push(message.type)
      await script(stream, message)
    }, { maxFrameBytes: JOB_MAX_FRAME_BYTES, idleTimeoutMs: 0 })
  })
  afterAll(async () => { await Promise.all([client?.stop(), provider?.stop()]) })

  const terms = (): LeaseTerms => ({
    leaseId: `0x${'ab'.repeat(32)}`, orderId: `0x${'cd'.repeat(32)}`, provider: providerKey.address as `0x${string}`,
    providerPeerId: provider.peerId.toString(), renter: renter.address as `0x${string}`, renterPeerId: client.peerId.toString(),
    token: ZERO_ADDRESS, chainId: 31337n, escrow: ZERO_ADDRESS, pricePerGpuHour: 3_600_000n, gpus: ['GPU-a'], gpuClass: 'SIM', durationSec: 3600,
    billingIntervalSec: 1, paymentGraceSec: 1, startDeadline: Date.now() + 60_000, jobHash: `0x${'ef'.repeat(32)}`,
    providerAddresses: provider.getMultiaddrs().map((a) => a.decapsulateCode(421).toString()), acceptedAt: Date.now()
  })
  const options = (t: LeaseTerms): Parameters<typeof attachJob>[0] => ({
    node: client, wallet: renter, terms: t, settlementDomain: domain, marketDomain: domain, budget: 10n ** 9n, fromSequence: 0
  })
  const event = (t: LeaseTerms, sequence: number, fields: Omit<JobEvent, 'type' | 'leaseId' | 'sequence' | 'at'>): Uint8Array =>
    encodeJobEvent({ type: 'job-event', leaseId: t.leaseId, sequence, at: Date.now(), ...fields })
  const report = (t: LeaseTerms, endMs: number, key: Wallet): JobEvent['report'] => {
    const total = cumulativeAmount(t.pricePerGpuHour, BigInt(endMs))
    const value: UsageReport = {
      leaseId: t.leaseId, provider: t.provider, renter: t.renter, token: t.token, periodIndex: 0, startOffsetMs: 0, endOffsetMs: endMs,
      gpuMilliseconds: BigInt(endMs), amount: total, cumulativeAmount: total, avgUtilizationBp: null, peakMemoryMiB: null,
      energyMilliJoules: null, final: true
    }
    return { report: value, signature: signUsageReport(value, key, domain) }
  }

  it('dials the lease\'s provider only: /p2p added, other peers\' addresses skipped', () => {
    const t = terms()
    const other = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'
    const targets = providerTargets({ ...t, providerAddresses: ['/ip4/10.0.0.1/tcp/1', `/ip4/10.0.0.2/tcp/2/p2p/${other}`, 'not an address'] })
    expect(targets.map((a) => a.toString())).toEqual([`/ip4/10.0.0.1/tcp/1/p2p/${t.providerPeerId}`])
    expect(providerTargets({ ...t, providerAddresses: [] }).map((a) => a.toString())).toEqual([`/p2p/${t.providerPeerId}`])
  })

  it('pays a valid report, refuses to pay a forged one, and says so in the outcome', async () => {
    const t = terms()
    const vouchers: string[] = []
    script = async (stream) => {
      await stream.send(encodeJobReply({ type: 'job-reply', subject: 'attach', ok: true, code: null, message: null }))
      await stream.send(event(t, 1, { kind: 'started' }))
      await stream.send(event(t, 2, { kind: 'usage', report: report(t, 1000, stranger) }))
      await stream.send(event(t, 3, { kind: 'exit', exitCode: 0, state: 'completed' }))
      for (let f = await stream.read(); f !== null; f = await stream.read()) vouchers.push(decodeMessage(f).type)
    }
    const outcome = await attachJob(options(t))
    expect(outcome).toMatchObject({ state: 'completed', exitCode: 0, paid: 0n, lastSequence: 3, paymentStopped: { code: 'BAD_SIGNATURE' } })
    expect(vouchers).toEqual([])
  })

  it('surfaces refusals with the provider\'s code, and a provider gone mid-job as retryable', async () => {
    const t = terms()
    script = async (stream) => {
      await stream.send(encodeJobReply({ type: 'job-reply', subject: 'submit', ok: false, code: 'WRONG_STATE', message: 'the lease is failed' }))
    }
    const refused = await submitJob({ ...options(t), spec: { command: 'x', args: [], env: {}, image: null, maxRunTimeSec: 1 }, bundle: new Uint8Array(10), bundleSize: 10 }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(JobClientError)
    expect(refused).toMatchObject({ code: 'WRONG_STATE', remote: true })
    script = async (stream) => {
      await stream.send(encodeJobReply({ type: 'job-reply', subject: 'attach', ok: true, code: null, message: null }))
      await stream.send(event(t, 1, { kind: 'started' }))
    }
    const gone = await attachJob(options(t)).catch((e: unknown) => e)
    expect(gone).toMatchObject({ name: 'JobClientError', code: 'CLOSED', retryable: true })
    script = async (stream) => {
      await stream.send(encodeJobReply({ type: 'job-reply', subject: 'terminate', ok: false, code: 'NOT_RENTER', message: 'no' }))
    }
    await expect(cancelJob({ node: client, wallet: renter, terms: t, marketDomain: domain })).rejects.toMatchObject({ code: 'NOT_RENTER' })
    expect(received).toContain('terminate')
  })

  it('fails with DIAL_FAILED when the provider cannot be reached', async () => {
    // A peer nobody runs, at a port nothing listens on.
    const t = { ...terms(), providerPeerId: '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq', providerAddresses: ['/ip4/127.0.0.1/tcp/1'] }
    await expect(attachJob({ ...options(t), timeouts: { openTimeoutMs: 3000 } })).rejects.toMatchObject({ code: 'DIAL_FAILED' })
  })
})
