import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { Wallet } from 'ethers'
import { openLedger } from '@gpumesh/ledger'
import type { Ledger } from '@gpumesh/ledger'
import { jsonReplacer } from '@gpumesh/protocol'
import type { Address, Bytes32, Voucher } from '@gpumesh/protocol'
import { EscrowClient, settleOnchain, unredeemedAmount } from '../src/index.js'
import type { SettleProgress, SettleReport } from '../src/index.js'
import { addressOf, fund, runningLease, startChain, voucher as signedVoucher } from './helpers.js'
import type { Chain } from './helpers.js'

let c: Chain
let providerKey: string
let provider: Address
let providerClient: EscrowClient
let renters: string[]

beforeAll(async () => {
  c = await startChain()
  providerKey = Wallet.createRandom().privateKey
  provider = addressOf(providerKey)
  await (await c.deployer.sendTransaction({ to: provider, value: 10n ** 18n })).wait()
  renters = [c.chain.keys[3] as string, c.chain.keys[4] as string]
  for (const key of renters) await fund(c, key, 1_000_000n)
  providerClient = c.client(providerKey)
}, 120_000)

afterAll(async () => {
  await c?.stop()
})

let dir: string
let ledgerPath: string
let ledger: Ledger

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gpumesh-settle-'))
  ledgerPath = join(dir, 'ledger.db')
  ledger = openLedger(ledgerPath)
})
afterEach(() => {
  ledger.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A running on-chain lease in the ledger, between the provider and a renter. */
function lease (renterKey: string): Bytes32 {
  return runningLease(ledger, c, { renterKey, provider, pricePerGpuHour: 1_000_000n })
}

/** The renter signs a voucher for the lease and the provider stores it, as the job session does. */
function pay (id: Bytes32, renterKey: string, sequence: bigint, cumulativeAmount: bigint): Voucher {
  const v = signedVoucher({ leaseId: id, provider, renterKey, token: c.token, cumulativeAmount, sequence, domain: c.domain })
  ledger.recordVoucher({ leaseId: id, sequence, cumulativeAmount, signature: v.signature.signature, body: JSON.stringify(v, jsonReplacer) })
  return v
}

const balance = async (): Promise<bigint> => await providerClient.tokenBalance(c.token, provider)
const retry = { attempts: 3, baseDelayMs: 10 }

/** Every lease's redeemed figure in the ledger equals what the escrow paid it. */
async function expectLedgerMatchesChain (vouchers: Voucher[]): Promise<void> {
  for (const v of vouchers) {
    expect(ledger.leaseSettlement(v.leaseId)?.redeemed).toBe(await providerClient.paid(v))
  }
}

describe('settleOnchain', () => {
  it('pays exactly the voucher totals, and nothing more when run again', async () => {
    const [a, b, d] = [lease(renters[0] as string), lease(renters[0] as string), lease(renters[1] as string)]
    pay(a, renters[0] as string, 1n, 100n)
    const va = pay(a, renters[0] as string, 2n, 250n)
    const vb = pay(b, renters[0] as string, 1n, 40n)
    const vd = pay(d, renters[1] as string, 1n, 75n)
    expect(unredeemedAmount(ledger, c.escrow)).toBe(365n)
    const before = await balance()

    const report = await settleOnchain({ ledger, client: providerClient, batchSize: 2, retry })
    expect(report.batches.map((b) => [b.state, b.entries.length])).toEqual([['confirmed', 2], ['confirmed', 1]])
    expect(report.totals).toMatchObject({ vouchers: 3, paid: 365n, byToken: [{ token: c.token, paid: 365n }] })
    expect(report.skipped).toEqual([])
    expect(await balance()).toBe(before + 365n)
    expect(ledger.listSettlements().map((s) => s.state)).toEqual(['confirmed', 'confirmed'])
    expect(ledger.settlementBatch(report.batches[0]?.settlementId ?? -1)?.entries.map((e) => [e.paidAmount, e.code])).toEqual([[250n, 'PAID'], [40n, 'PAID']])
    await expectLedgerMatchesChain([va, vb, vd])
    expect(unredeemedAmount(ledger, c.escrow)).toBe(0n)

    const again = await settleOnchain({ ledger, client: providerClient, retry })
    expect(again.batches).toEqual([])
    expect(again.totals.paid).toBe(0n)
    expect(await balance()).toBe(before + 365n)

    // a newer voucher pays only its increase
    const va2 = pay(a, renters[0] as string, 3n, 300n)
    const third = await settleOnchain({ ledger, client: providerClient, retry })
    expect(third.batches[0]?.entries.map((e) => [e.leaseId, e.paidBefore, e.paid, e.code])).toEqual([[a, 250n, 50n, 'PAID']])
    expect(await balance()).toBe(before + 415n)
    await expectLedgerMatchesChain([va2, vb, vd])
    expect(ledger.earnings()[0]).toMatchObject({ vouchered: 415n, redeemed: 415n, outstanding: 0n })
  })

  it('dry run says what would be paid and sends and records nothing; minAmount holds back small increases', async () => {
    const [a, b] = [lease(renters[0] as string), lease(renters[1] as string)]
    pay(a, renters[0] as string, 1n, 500n)
    pay(b, renters[1] as string, 1n, 5n)
    const before = await balance()
    const dry = await settleOnchain({ ledger, client: providerClient, dryRun: true, retry })
    expect(dry.batches).toHaveLength(1)
    expect(dry.batches[0]).toMatchObject({ state: 'dry-run', settlementId: null, txHash: null, paid: 505n })
    expect(await balance()).toBe(before)
    expect(ledger.listSettlements()).toEqual([])

    const report = await settleOnchain({ ledger, client: providerClient, minAmount: 10n, retry })
    expect(report.batches[0]?.entries.map((e) => e.leaseId)).toEqual([a])
    expect(await balance()).toBe(before + 500n)
    expect(unredeemedAmount(ledger, c.escrow)).toBe(5n)
  })

  it('records the chain as the truth when a lease was paid by someone else', async () => {
    const a = lease(renters[0] as string)
    const v = pay(a, renters[0] as string, 1n, 60n)
    // the renter redeems the provider's voucher itself
    await c.client(renters[0] as string).redeem([v])
    const before = await balance()
    const report = await settleOnchain({ ledger, client: providerClient, retry })
    expect(report.batches).toEqual([])
    expect(await balance()).toBe(before)
    expect(ledger.leaseSettlement(a)).toMatchObject({ redeemed: 60n, outstanding: 0n })
  })

  it('reconciles after the ledger write following the send failed: paid once, ledger equal to the chain', async () => {
    const a = lease(renters[0] as string)
    const va = pay(a, renters[0] as string, 1n, 120n)
    const before = await balance()
    const failing = new Proxy(ledger, {
      get (target, prop, receiver) {
        if (prop === 'confirmSettlement') return () => { throw new Error('disk full') }
        const value = Reflect.get(target, prop, receiver) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
    await expect(settleOnchain({ ledger: failing, client: providerClient, retry })).rejects.toThrow('disk full')
    expect(await balance()).toBe(before + 120n)
    expect(ledger.unfinishedSettlements().map((s) => s.state)).toEqual(['submitted'])

    const report = await settleOnchain({ ledger, client: providerClient, retry })
    expect(report.reconciled).toMatchObject([{ state: 'confirmed', paid: 120n, leases: 1 }])
    expect(report.batches).toEqual([])
    expect(await balance()).toBe(before + 120n)
    expect(ledger.listSettlements().map((s) => s.state)).toEqual(['confirmed'])
    await expectLedgerMatchesChain([va])
  })
})

describe('RPC failures', () => {
  /** A JSON-RPC proxy to anvil that, once, forwards eth_sendRawTransaction and then drops the connection. */
  async function lossyProxy (): Promise<{ url: string, dropped: () => number, close: () => Promise<void> }> {
    let dropped = 0
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString()
        void (async () => {
          const upstream = await fetch(c.chain.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
          const text = await upstream.text()
          if (dropped === 0 && body.includes('eth_sendRawTransaction')) {
            dropped++
            res.socket?.destroy()
            return
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(text)
        })()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    return {
      url: `http://127.0.0.1:${port}`,
      dropped: () => dropped,
      close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => { resolve() })) }
    }
  }

  it('retries a broadcast whose answer was lost by finding the transaction, not by sending another', async () => {
    const proxy = await lossyProxy()
    const client = new EscrowClient({ rpcUrl: proxy.url, escrow: c.escrow, privateKey: providerKey, pollIntervalMs: 20 })
    try {
      const v = pay(lease(renters[0] as string), renters[0] as string, 1n, 90n)
      const before = await balance()
      const nonceBefore = await c.rpc.getTransactionCount(provider)
      const events: SettleProgress[] = []
      const report = await settleOnchain({ ledger, client, retry, onProgress: (e) => { events.push(e) } })
      expect(proxy.dropped()).toBe(1)
      expect(events.filter((e) => e.type === 'retry')).toHaveLength(1)
      expect(events.find((e) => e.type === 'retry')).toMatchObject({ error: { name: 'ChainError', code: 'NETWORK', retryable: true } })
      expect(report.batches.map((b) => [b.state, b.paid])).toEqual([['confirmed', 90n]])
      expect(await c.rpc.getTransactionCount(provider)).toBe(nonceBefore + 1)
      expect(await balance()).toBe(before + 90n)
      await expectLedgerMatchesChain([v])
    } finally {
      client.close()
      await proxy.close()
    }
  })
})

describe('kill -9 of the settling process', () => {
  const fixture = fileURLToPath(new URL('./fixtures/settle-child.mjs', import.meta.url))

  async function runUntil (stage: 'signed' | 'broadcast'): Promise<string> {
    const child = spawn(process.execPath, [fixture, ledgerPath, c.chain.rpcUrl, c.escrow, providerKey, stage], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
    const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
    const hash = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        const match = new RegExp(`${stage.toUpperCase()} (0x[0-9a-f]{64})`).exec(out)
        if (match !== null) resolve(match[1] as string)
      })
      child.once('exit', (code) => { reject(new Error(`the settling process exited (${code}) before ${stage}: ${out} ${err}`)) })
    })
    child.kill('SIGKILL')
    await exited
    return hash
  }

  async function expectPaidOnce (vouchers: Voucher[], before: bigint, total: bigint): Promise<SettleReport> {
    const report = await settleOnchain({ ledger, client: providerClient, retry })
    expect(await balance()).toBe(before + total)
    expect(ledger.unfinishedSettlements()).toEqual([])
    await expectLedgerMatchesChain(vouchers)
    expect(unredeemedAmount(ledger, c.escrow)).toBe(0n)
    const again = await settleOnchain({ ledger, client: providerClient, retry })
    expect(again.batches).toEqual([])
    expect(await balance()).toBe(before + total)
    return report
  }

  it('after the transaction reached the node: the restart confirms it and sends nothing', async () => {
    const vouchers = [pay(lease(renters[0] as string), renters[0] as string, 1n, 70n), pay(lease(renters[1] as string), renters[1] as string, 1n, 30n)]
    ledger.close()
    const before = await balance()
    const hash = await runUntil('broadcast')
    ledger.open()
    expect(ledger.unfinishedSettlements()).toMatchObject([{ state: 'submitted', txHash: hash }])
    const report = await expectPaidOnce(vouchers, before, 100n)
    expect(report.reconciled).toMatchObject([{ state: 'confirmed', txHash: hash, paid: 100n }])
    expect(report.batches).toEqual([])
  })

  it('after signing, before broadcasting: the restart fails that batch and pays once with a new one', async () => {
    const vouchers = [pay(lease(renters[0] as string), renters[0] as string, 1n, 45n)]
    ledger.close()
    const before = await balance()
    const hash = await runUntil('signed')
    ledger.open()
    expect(ledger.unfinishedSettlements()).toMatchObject([{ state: 'submitted', txHash: hash }])
    expect(await providerClient.knowsTransaction(hash as `0x${string}`)).toBe(false)
    const report = await expectPaidOnce(vouchers, before, 45n)
    expect(report.reconciled).toMatchObject([{ state: 'failed', txHash: hash, paid: 0n }])
    expect(report.batches.map((b) => b.paid)).toEqual([45n])
    expect(ledger.listSettlements().map((s) => s.state)).toEqual(['failed', 'confirmed'])
  })
})
