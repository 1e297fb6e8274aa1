/**
 * On-chain settlement end to end on 127.0.0.1, against a real EVM node (anvil): a renter deposits into
 * the escrow, a leased job runs on a provider settling on chain, vouchers accumulate, and the built
 * `gpumesh settle onchain` pays the provider exactly the voucher total — once, also across a kill -9
 * of the settling process after its transaction was sent. A renter whose escrow runs short has its job
 * stopped (INSUFFICIENT_ESCROW) and the provider is still paid every interval it gave.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Wallet, encryptKeystoreJson } from 'ethers'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import { generatePeerKey, peerKeyToBytes, type GpumeshNode } from '@gpumesh/net'
import { ZERO_ADDRESS, type Address } from '@gpumesh/protocol'
import { submitJob } from '@gpumesh/renter'
import { addressOf, fund, startChain, type Chain } from '../packages/settlement/test/helpers.js'
import { runCli, spawnCli } from './cli-helpers.js'
import { CHAIN_ID, startClient, tempDir, type TestProvider } from './provider-helpers.js'
import { clientOptions, leaseFrom, proposeTo, startJobProvider, trainSpec, trainingBundle } from './jobs-helpers.js'

const PASSWORD = 'settlement-e2e'

describe('on-chain settlement end to end', () => {
  let c: Chain
  let daemon: TestProvider
  let client: GpumeshNode
  let providerKey: string
  let provider: Address
  let dir: { dir: string, remove: () => Promise<void> }
  let bundle: Awaited<ReturnType<typeof trainingBundle>>
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, GPUMESH_PASSWORD: PASSWORD, GPUMESH_HOME: daemon.dataDir })

  beforeAll(async () => {
    c = await startChain()
    providerKey = c.chain.keys[1] as string
    provider = addressOf(providerKey)
    dir = await tempDir()
    const settlement = { mode: 'onchain', rpcUrl: c.chain.rpcUrl, escrowAddress: c.escrow }
    const pricing = { token: c.token, chainId: Number(c.chain.chainId) }
    ;[daemon, client, bundle] = await Promise.all([
      startJobProvider({ pricing: { perGpuHour: { 'H100-SXM-80GB': '2.00' }, ...pricing }, settlement }, { paymentKey: providerKey, dataDir: dir.dir }),
      startClient(),
      trainingBundle()
    ])
    // What `gpumesh init` leaves, so the CLI can act as this provider: its keys and its config.
    const peerKey = await generatePeerKey()
    await writeFile(join(dir.dir, 'peer.key'), peerKeyToBytes(peerKey), { mode: 0o600 })
    // A light scrypt: the CLI unlocks this key on every run here.
    const keystore = await encryptKeystoreJson({ address: provider, privateKey: providerKey }, PASSWORD, { scrypt: { N: 1 << 10 } })
    await writeFile(join(dir.dir, 'payment-key.json'), keystore, { mode: 0o600 })
    await writeFile(join(dir.dir, 'config.yaml'), [
      `pricing: { token: "${c.token}", chainId: ${c.chain.chainId} }`,
      `settlement: { mode: onchain, rpcUrl: "${c.chain.rpcUrl}", escrowAddress: "${c.escrow}" }`,
      ''
    ].join('\n'))
  }, 120_000)

  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
    await c?.stop()
    await dir?.remove()
  })

  const runLease = async (renter: Wallet, budget = 10n ** 12n): Promise<{ leaseId: string, outcome: Awaited<ReturnType<typeof submitJob>> }> => {
    const terms = await leaseFrom(client, daemon.provider.addresses(), renter, bundle.sha256, { token: c.token })
    expect(terms.escrow).toBe(c.escrow)
    const outcome = await submitJob({ ...clientOptions(client, renter, terms, budget), spec: trainSpec(25, 100), bundle: bundle.bytes, bundleSize: bundle.bytes.length })
    return { leaseId: terms.leaseId, outcome }
  }

  it('refuses a lease to a renter with nothing in escrow, and vouchers signed for another domain', async () => {
    const broke = new Wallet(c.chain.keys[5] as string)
    const decision = await proposeTo(client, daemon.provider.addresses(), broke, bundle.sha256, { token: c.token })
    expect(decision.accepted).toBe(false)
    if (decision.accepted) return
    expect(decision.code).toBe('INSUFFICIENT_ESCROW')
    expect(decision.message).toMatch(/deposit at least/)

    const renter = new Wallet(c.chain.keys[6] as string)
    await fund(c, renter.privateKey, 1_000_000n)
    const terms = await leaseFrom(client, daemon.provider.addresses(), renter, bundle.sha256, { token: c.token })
    const offchain = await submitJob({
      ...clientOptions(client, renter, terms, 10n ** 12n, { chainId: CHAIN_ID, verifyingContract: ZERO_ADDRESS }),
      spec: trainSpec(5, 100), bundle: bundle.bytes, bundleSize: bundle.bytes.length
    })
    expect(offchain.voucherRefused?.code).toBe('WRONG_DOMAIN')
    expect(daemon.provider.ledger.vouchers(terms.leaseId)).toEqual([])
  }, 60_000)

  it('a deposit, a job, and settle onchain pays exactly the voucher total, once, across a kill -9 after sending', async () => {
    const renter = new Wallet(c.chain.keys[2] as string)
    await fund(c, renter.privateKey, 5_000_000n)
    const before = await c.client(providerKey).tokenBalance(c.token, provider)

    const first = await runLease(renter)
    const second = await runLease(renter)
    for (const run of [first, second]) {
      expect(run.outcome).toMatchObject({ state: 'completed', exitCode: 0 })
      expect(run.outcome.voucherRefused).toBeUndefined()
      expect(daemon.provider.ledger.usagePeriods(run.leaseId).length).toBeGreaterThanOrEqual(2)
    }
    const vouchered = (leaseId: string): bigint => daemon.provider.ledger.latestVoucher(leaseId)?.cumulativeAmount ?? 0n
    const total = vouchered(first.leaseId) + vouchered(second.leaseId)
    expect(total).toBe(first.outcome.paid + second.outcome.paid)
    expect(total).toBeGreaterThan(0n)

    // A dry run says what would be paid and moves nothing.
    const dry = await runCli(['settle', 'onchain', '--dry-run', '--json'], { env: env() })
    expect(dry.stderr).toBe('')
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout).totals.paid).toBe(total.toString())
    expect(await c.client(providerKey).tokenBalance(c.token, provider)).toBe(before)

    // Mining stops; the settling process sends its transaction and is killed while it waits.
    await c.rpc.send('evm_setAutomine', [false])
    const { child, exited } = spawnCli(['settle', 'onchain', '--json'], { env: env() })
    const watch = openLedger(join(daemon.dataDir, 'ledger.sqlite'))
    try {
      await vi.waitFor(async () => {
        expect(watch.unfinishedSettlements('onchain').some((b) => b.state === 'submitted')).toBe(true)
        expect((await c.rpc.send('txpool_content', [])).pending).not.toEqual({})
      }, { timeout: 30_000, interval: 50 })
      child.kill('SIGKILL')
      await exited
      await c.rpc.send('evm_mine', [])
    } finally {
      await c.rpc.send('evm_setAutomine', [true])
    }
    // The chain paid; the ledger does not know yet.
    expect(await c.client(providerKey).tokenBalance(c.token, provider)).toBe(before + total)
    expect(watch.unfinishedSettlements('onchain')).toHaveLength(1)

    // The restart reconciles with the chain and sends nothing more.
    const again = await runCli(['settle', 'onchain', '--json'], { env: env() })
    expect(again.code).toBe(0)
    const report = JSON.parse(again.stdout)
    expect(report.reconciled).toMatchObject([{ state: 'confirmed', paid: total.toString() }])
    expect(report.totals.paid).toBe('0')
    expect(await c.client(providerKey).tokenBalance(c.token, provider)).toBe(before + total)
    expect(watch.unfinishedSettlements('onchain')).toEqual([])
    expect(watch.leaseSettlement(first.leaseId)?.redeemed).toBe(vouchered(first.leaseId))
    expect(watch.leaseSettlement(second.leaseId)?.redeemed).toBe(vouchered(second.leaseId))

    // And once more: nothing to redeem, nothing paid.
    const third = await runCli(['settle', 'onchain'], { env: env() })
    expect(third.code).toBe(0)
    expect(third.stdout).toContain('Nothing to redeem')
    expect(await c.client(providerKey).tokenBalance(c.token, provider)).toBe(before + total)

    // The provider's earnings say the same.
    const earnings = await runCli(['earnings', '--json'], { env: env() })
    const row = (JSON.parse(earnings.stdout) as { earnings: Array<{ token: string, redeemed: string, vouchered: string }> }).earnings
      .find((t) => t.token.toLowerCase() === c.token.toLowerCase())
    expect(row?.redeemed).toBe(total.toString())
    expect(row?.vouchered).toBe(total.toString())
    watch.close()
  }, 120_000)

  it('stops the job of a renter whose escrow no longer covers the next interval, and the provider is paid for every interval it gave', async () => {
    const renter = new Wallet(c.chain.keys[3] as string)
    // 2.00 per GPU-hour on one GPU is 555 base units a 1 s interval: enough for about three of them.
    await fund(c, renter.privateKey, 1_800n)
    const before = await c.client(providerKey).tokenBalance(c.token, provider)
    const terms = await leaseFrom(client, daemon.provider.addresses(), renter, bundle.sha256, { token: c.token })
    const outcome = await submitJob({ ...clientOptions(client, renter, terms), spec: trainSpec(100, 100), bundle: bundle.bytes, bundleSize: bundle.bytes.length })
    expect(outcome).toMatchObject({ state: 'terminated', reason: 'INSUFFICIENT_ESCROW' })

    const lease = daemon.provider.ledger.getLease(terms.leaseId)
    expect(lease).toMatchObject({ state: 'terminated', stateReason: 'INSUFFICIENT_ESCROW' })
    const ending = daemon.provider.ledger.leaseEvents(terms.leaseId).at(-1)
    expect(String(ending?.detail?.message ?? '')).toMatch(/deposit at least/)
    const accrued = daemon.provider.ledger.lastUsagePeriod(terms.leaseId)?.cumulativeAmount ?? 0n
    expect(accrued).toBeLessThanOrEqual(1_800n)
    expect(daemon.provider.ledger.latestVoucher(terms.leaseId)?.cumulativeAmount).toBe(accrued)

    const settled = await runCli(['settle', 'onchain', '--json'], { env: env() })
    expect(settled.code).toBe(0)
    expect(await c.client(providerKey).tokenBalance(c.token, provider)).toBe(before + accrued)
    expect((await c.client(providerKey).account(renter.address as Address, c.token)).balance).toBe(1_800n - accrued)
  }, 120_000)
})
