/**
 * Job sessions through the renter's job client against a real provider (1 s billing, 2 s grace):
 * reconnect and resume from a sequence, a renter that stops paying, cancel.
 */
import { Wallet, type BaseWallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { GpumeshNode } from '@gpumesh/net'
import type { JobEvent } from '@gpumesh/protocol'
import { JobClientError, attachJob, cancelJob, downloadArtifacts, submitJob } from '@gpumesh/renter'
import { startClient, type TestProvider } from './provider-helpers.js'
import { clientOptions, leaseFrom, startJobProvider, trainSpec, trainingBundle } from './jobs-helpers.js'

describe('job sessions', () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let bundle: Awaited<ReturnType<typeof trainingBundle>>

  beforeAll(async () => {
    ;[daemon, client] = await Promise.all([startJobProvider(), startClient()])
    bundle = await trainingBundle()
  })
  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
  })

  const newLease = async (wallet: BaseWallet): ReturnType<typeof leaseFrom> => await leaseFrom(client, daemon.provider.addresses(), wallet, bundle.sha256)

  it('a renter that reconnects resumes the events from a sequence and keeps paying', async () => {
    const wallet = Wallet.createRandom()
    const terms = await newLease(wallet)
    const first: JobEvent[] = []
    const stop = new AbortController()
    const submitted = submitJob({
      ...clientOptions(client, wallet, terms),
      spec: trainSpec(30, 100),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      signal: stop.signal,
      onEvent: (e) => { first.push(e); if (first.length === 8) stop.abort() }
    })
    await expect(submitted).rejects.toMatchObject({ name: 'JobClientError', code: 'ABORTED' })
    const seen = first.length
    const rest: JobEvent[] = []
    const outcome = await attachJob({ ...clientOptions(client, wallet, terms), fromSequence: seen, onEvent: (e) => { rest.push(e) } })
    expect(outcome).toMatchObject({ state: 'completed', exitCode: 0 })
    expect(outcome.paymentStopped).toBeUndefined()
    expect(rest[0]?.sequence).toBe(seen + 1)
    expect([...first, ...rest].map((e) => e.sequence)).toEqual([...first, ...rest].map((_, i) => i + 1))
    expect(rest.at(-1)).toMatchObject({ kind: 'exit', state: 'completed' })
    // Paid in full through the second stream.
    const periods = daemon.provider.ledger.usagePeriods(terms.leaseId)
    expect(daemon.provider.ledger.latestVoucher(terms.leaseId)?.cumulativeAmount).toBe(periods.at(-1)?.cumulativeAmount)
    // Attaching after the end still tells how it ended.
    const again = await attachJob({ ...clientOptions(client, wallet, terms), fromSequence: outcome.lastSequence })
    expect(again).toMatchObject({ state: 'completed', exitCode: 0 })
  }, 20_000)

  it('a renter that stops paying gets its job terminated UNPAID within interval + grace', async () => {
    const wallet = Wallet.createRandom()
    const terms = await newLease(wallet)
    let startedAt = 0
    // A budget below the first period's price: the payment policy refuses to pay it.
    const outcome = await submitJob({
      ...clientOptions(client, wallet, terms, 1n),
      spec: trainSpec(1000, 100),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { if (e.kind === 'started') startedAt = Date.now() }
    })
    const endedAfter = Date.now() - startedAt
    expect(outcome).toMatchObject({ state: 'terminated', reason: 'UNPAID', paid: 0n })
    expect(outcome.paymentStopped?.code).toBe('BUDGET_SPENT')
    // interval (1 s) + grace (2 s), plus the stop itself (the fixture checkpoints at once on SIGTERM).
    expect(endedAfter).toBeLessThan(1000 + 2000 + 1500)
    expect(daemon.provider.ledger.getLease(terms.leaseId)).toMatchObject({ state: 'terminated', stateReason: 'UNPAID' })
    expect(daemon.provider.ledger.vouchers(terms.leaseId)).toEqual([])
  }, 20_000)

  it('cancel ends the job terminated RENTER_CANCEL; artifacts wait for the end', async () => {
    const wallet = Wallet.createRandom()
    const terms = await newLease(wallet)
    let started = false
    const running = submitJob({
      ...clientOptions(client, wallet, terms),
      spec: trainSpec(1000, 100),
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { if (e.kind === 'started') started = true }
    })
    await vi.waitFor(() => { expect(started).toBeTruthy() }, { timeout: 10_000 })
    const early = await downloadArtifacts({ ...clientOptions(client, wallet, terms), destFile: '/nonexistent/never-written' }).catch((err: unknown) => err)
    expect(early).toBeInstanceOf(JobClientError)
    expect(early).toMatchObject({ code: 'NOT_FINISHED', remote: true })
    await cancelJob({ ...clientOptions(client, wallet, terms), reason: 'enough' })
    const outcome = await running
    expect(outcome).toMatchObject({ state: 'terminated', reason: 'RENTER_CANCEL' })
    expect(daemon.provider.ledger.getLease(terms.leaseId)).toMatchObject({ state: 'terminated', stateReason: 'RENTER_CANCEL' })
    await expect(cancelJob({ ...clientOptions(client, wallet, terms) })).rejects.toMatchObject({ code: 'WRONG_STATE' })
  }, 20_000)
})
