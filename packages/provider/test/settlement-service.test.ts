/**
 * The provider's side of on-chain settlement against a real EVM node (anvil) and a real ledger file:
 * the escrow guard's rule, automatic redemption once what is unredeemed passes the threshold, and one
 * transaction queue per data directory (settlement.lock).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { openLedger, type Ledger } from '@gpumesh/ledger'
import { jsonReplacer, type Address, type Bytes32 } from '@gpumesh/protocol'
import { SETTLEMENT_LOCK_FILE, SettlementBusyError, SettlementService, parseProviderConfig } from '../src/index.js'
import { lockProcessFile } from '../src/data-dir-lock.js'
import { addressOf, fund, runningLease, startChain, voucher, type Chain } from '../../settlement/test/helpers.js'

const logger = pino({ level: 'silent' })

describe('SettlementService', () => {
  let c: Chain
  let dir: string
  let ledger: Ledger
  let providerKey: string
  let provider: Address
  let renterKey: string
  let service: SettlementService

  beforeAll(async () => {
    c = await startChain()
    providerKey = c.chain.keys[1] as string
    provider = addressOf(providerKey)
    renterKey = c.chain.keys[2] as string
    await fund(c, renterKey, 10_000n)
    dir = mkdtempSync(join(tmpdir(), 'gpumesh-settlement-service-'))
    ledger = openLedger(join(dir, 'ledger.sqlite'))
    const config = parseProviderConfig({
      dataDir: dir,
      pricing: { token: c.token, chainId: Number(c.chain.chainId), tokenDecimals: 6 },
      billing: { intervalSec: 60 },
      settlement: { mode: 'onchain', rpcUrl: c.chain.rpcUrl, escrowAddress: c.escrow, autoRedeem: { whenUnredeemedAbove: '0.001' } }
    })
    service = new SettlementService(config, { ledger, paymentKey: providerKey, logger, checkIntervalMs: 100 })
  }, 60_000)
  afterAll(async () => {
    await service?.stop()
    ledger?.close()
    await c?.stop()
    if (dir != null) rmSync(dir, { recursive: true, force: true })
  })

  /** A running lease of 1 GPU at 3.60/GPU-hour (60 s interval: 60,000 base units) with a voucher and its usage. */
  function lease (cumulative: bigint): Bytes32 {
    const id = runningLease(ledger, c, { renterKey, provider, pricePerGpuHour: 3_600_000n })
    const v = voucher({ leaseId: id, provider, renterKey, token: c.token, cumulativeAmount: cumulative, domain: c.domain })
    ledger.recordVoucher({ leaseId: id, sequence: 1n, cumulativeAmount: cumulative, signature: v.signature.signature, body: JSON.stringify(v, jsonReplacer) })
    return id
  }

  it('covers a renter only while its escrow holds what is unredeemed plus the next intervals', async () => {
    const guard = service.guard
    if (guard === null) throw new Error('an on-chain service has a guard')
    const renter = addressOf(renterKey)
    // 10,000 deposited; nothing owed yet: a new lease's first interval (60,000) does not fit, 9,000 does.
    expect(await guard.check(renter, c.token, 9_000n)).toMatchObject({ covered: true, available: 10_000n, required: 9_000n })
    const refused = await guard.check(renter, c.token, 60_000n)
    expect(refused).toMatchObject({ covered: false, required: 60_000n })
    expect(refused.message).toContain('deposit at least 0.05 more')
  })

  it('redeems on its own once what is unredeemed passes the threshold, and never twice', async () => {
    const before = await c.client(providerKey).tokenBalance(c.token, provider)
    const id = lease(4_000n)
    service.start()
    await vi.waitFor(async () => { expect(await c.client(providerKey).tokenBalance(c.token, provider)).toBe(before + 4_000n) }, { timeout: 20_000, interval: 100 })
    await vi.waitFor(() => { expect(ledger.leaseSettlement(id)?.redeemed).toBe(4_000n) }, { timeout: 5_000 })
    // The run's report is kept when the run returns, a moment after the ledger has the redemption.
    await vi.waitFor(() => { expect(service.lastReport?.totals.paid).toBe(4_000n) }, { timeout: 5_000 })
    await service.stop()
    expect(await c.client(providerKey).tokenBalance(c.token, provider)).toBe(before + 4_000n)
  }, 60_000)

  it('refuses to settle while another process holds the data directory\'s settlement lock', async () => {
    const lock = await lockProcessFile(join(dir, SETTLEMENT_LOCK_FILE), () => new Error('held'))
    await expect(service.settle()).rejects.toBeInstanceOf(SettlementBusyError)
    await lock.release()
    await expect(service.settle({ dryRun: true })).resolves.toMatchObject({ dryRun: true })
  })
})
