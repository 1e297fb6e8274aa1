/**
 * Off-chain settlement through the built CLI: after real jobs on a provider, `gpumesh settle export`
 * writes a batch that `gpumesh settle verify` (and a plain ethers verifyTypedData call) accepts, marks
 * the leases exported so the next export holds only what is new, and a tampered file is refused
 * naming the entry.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Wallet, verifyTypedData, type BaseWallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GpumeshNode } from '@gpumesh/net'
import { submitJob } from '@gpumesh/renter'
import type { SettlementBatch } from '@gpumesh/settlement'
import { runCli } from './cli-helpers.js'
import { startClient, tempDir, type TestProvider } from './provider-helpers.js'
import { clientOptions, leaseFrom, startJobProvider, trainSpec, trainingBundle } from './jobs-helpers.js'

describe('off-chain settlement through the CLI', () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let out: { dir: string, remove: () => Promise<void> }
  let bundle: Awaited<ReturnType<typeof trainingBundle>>
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, GPUMESH_HOME: daemon.dataDir })

  beforeAll(async () => {
    ;[daemon, client, out, bundle] = await Promise.all([startJobProvider(), startClient(), tempDir(), trainingBundle()])
  }, 60_000)
  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
    await out?.remove()
  })

  const runJob = async (renter: BaseWallet): Promise<string> => {
    const terms = await leaseFrom(client, daemon.provider.addresses(), renter, bundle.sha256)
    const outcome = await submitJob({ ...clientOptions(client, renter, terms), spec: trainSpec(15, 100), bundle: bundle.bytes, bundleSize: bundle.bytes.length })
    expect(outcome).toMatchObject({ state: 'completed' })
    return terms.leaseId
  }

  it('exports what is owed, verifies with standard EIP-712, exports only what is new, and names a tampered entry', async () => {
    const alice = Wallet.createRandom()
    const bob = Wallet.createRandom()
    const leases = [await runJob(alice), await runJob(bob)]
    const ledger = daemon.provider.ledger
    const owed = leases.map((id) => ledger.latestVoucher(id)?.cumulativeAmount ?? 0n)

    const file = join(out.dir, 'batch-1.json')
    const exported = await runCli(['settle', 'export', '--out', file, '--json'], { env: env() })
    expect(exported.stderr).toBe('')
    expect(exported.code).toBe(0)
    const batch = JSON.parse(await readFile(file, 'utf8')) as SettlementBatch
    expect(batch.entries.map((e) => e.leaseId).sort()).toEqual([...leases].sort())
    expect(batch.totals).toEqual([{ chainId: '31337', token: '0x0000000000000000000000000000000000000000', amountDue: (owed[0]! + owed[1]!).toString(), entries: 2 }])
    for (const e of batch.entries) {
      expect(verifyTypedData(e.voucher.domain, { Voucher: batch.types.Voucher ?? [] }, e.voucher.message, e.voucher.signature)).toBe(e.voucher.message.renter)
    }

    const verified = await runCli(['settle', 'verify', file], { env: env() })
    expect(verified.code).toBe(0)
    expect(verified.stdout).toContain('2 of 2 entries verify')
    expect(ledger.leaseSettlement(leases[0]!)?.exported).toBe(owed[0])

    // Nothing new: nothing exported. A new lease: only it.
    expect((await runCli(['settle', 'export', '--out', join(out.dir, 'empty.json')], { env: env() })).stdout).toContain('Nothing to export')
    const third = await runJob(alice)
    const second = join(out.dir, 'batch-2.json')
    expect((await runCli(['settle', 'export', '--out', second], { env: env() })).code).toBe(0)
    const next = JSON.parse(await readFile(second, 'utf8')) as SettlementBatch
    expect(next.entries.map((e) => e.leaseId)).toEqual([third])
    expect((await runCli(['settle', 'verify', second], { env: env() })).code).toBe(0)

    // A payer who raises an amount in the file is told which entry and why.
    const entry = batch.entries[1]
    if (entry === undefined) throw new Error('entry missing')
    entry.amountDue = (BigInt(entry.amountDue) + 1000n).toString()
    await writeFile(file, JSON.stringify(batch))
    const refused = await runCli(['settle', 'verify', file], { env: env() })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`entry 1 (lease ${entry.leaseId})`)
    expect(refused.stderr).toContain('1 of 2 entries verify')

    // The batch recorded in the ledger can be written again, exactly.
    const again = join(out.dir, 'again.json')
    const rewritten = await runCli(['settle', 'export', '--batch', String(JSON.parse(exported.stdout).settlementId), '--out', again], { env: env() })
    expect(rewritten.code).toBe(0)
    expect((await runCli(['settle', 'verify', again], { env: env() })).code).toBe(0)

    const earnings = JSON.parse((await runCli(['earnings', '--json'], { env: env() })).stdout) as { earnings: Array<{ exported: string, vouchered: string, outstanding: string }> }
    expect(earnings.earnings[0]).toMatchObject({ exported: earnings.earnings[0]?.vouchered, outstanding: '0' })
  }, 120_000)
})
