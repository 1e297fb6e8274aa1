/**
 * One payout for a fleet, against a real EVM node (anvil): two member hosts settling on chain, with
 * renters' vouchers for leases on both in their ledgers (stored as the job session stores them). The
 * built CLI runs `fleet init` / `fleet add` / `fleet status` / `fleet settle` as the operator and
 * `fleet join --set-payout` on each host (its payout address becomes the fleet's): one transaction pays
 * the payout address the sum of the newest vouchers, a second run pays nothing, and each member's own
 * `settle onchain` then records the chain's figure without paying again.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet, encryptKeystoreJson } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePeerKey, peerKeyToBytes } from '@gpumesh/net'
import { jsonReplacer, marketDomain, paymentKeyAddress, signFleetMembership, type Address, type Bytes32 } from '@gpumesh/protocol'
import { settleOnchain } from '@gpumesh/settlement'
import { addressOf, fund, runningLease, startChain, voucher, type Chain } from '../packages/settlement/test/helpers.js'
import { runCli } from './cli-helpers.js'
import { startProvider, tempDir, type TestProvider } from './provider-helpers.js'

const PASSWORD = 'fleet-settle'

describe('fleet settle: one batch into the operator\'s payout address, exactly once', () => {
  let c: Chain
  let opDir: { dir: string, remove: () => Promise<void> }
  const members: Array<{ key: string, daemon: TestProvider, peerId: string }> = []
  const payout = Wallet.createRandom().address as Address
  let operatorKey: string
  let renterKey: string
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, GPUMESH_PASSWORD: PASSWORD, GPUMESH_HOME: opDir.dir })

  beforeAll(async () => {
    c = await startChain()
    operatorKey = c.chain.keys[6] as string
    renterKey = c.chain.keys[3] as string
    await fund(c, renterKey, 10_000_000n)
    opDir = await tempDir()
    // The operator's identity, as "gpumesh init" leaves it (a light scrypt: the CLI unlocks it each run).
    await writeFile(join(opDir.dir, 'peer.key'), peerKeyToBytes(await generatePeerKey()), { mode: 0o600 })
    await writeFile(join(opDir.dir, 'payment-key.json'), await encryptKeystoreJson({ address: addressOf(operatorKey), privateKey: operatorKey }, PASSWORD, { scrypt: { N: 1 << 10 } }), { mode: 0o600 })
    for (const key of [c.chain.keys[1] as string, c.chain.keys[2] as string]) {
      const peerKey = await generatePeerKey()
      const peerId = peerIdFromPrivateKey(peerKey).toString()
      const dir = await tempDir()
      const fields = { operator: addressOf(operatorKey), member: addressOf(key), peerId, expiresAt: Date.now() + 86_400_000 }
      await writeFile(join(dir.dir, 'fleet-membership.json'), JSON.stringify({ ...fields, proof: signFleetMembership(fields, operatorKey, marketDomain(c.chain.chainId)) }))
      // The host's identity as "gpumesh init" leaves it, so "gpumesh fleet join" can act as the host.
      await writeFile(join(dir.dir, 'peer.key'), peerKeyToBytes(peerKey), { mode: 0o600 })
      await writeFile(join(dir.dir, 'payment-key.json'), await encryptKeystoreJson({ address: addressOf(key), privateKey: key }, PASSWORD, { scrypt: { N: 1 << 10 } }), { mode: 0o600 })
      const daemon = await startProvider({
        gpus: 2,
        dataDir: dir.dir,
        peerKey,
        paymentKey: key,
        config: {
          pricing: { perGpuHour: { 'H100-SXM-80GB': '2.00' }, token: c.token, chainId: Number(c.chain.chainId) },
          settlement: { mode: 'onchain', rpcUrl: c.chain.rpcUrl, escrowAddress: c.escrow },
          offers: { fleetMembership: 'fleet-membership.json' }
        }
      })
      const stop = daemon.stop
      members.push({ key, daemon: { ...daemon, stop: async () => { await stop(); await dir.remove() } }, peerId })
    }
  }, 120_000)

  afterAll(async () => {
    for (const m of members) await m.daemon.stop()
    await c?.stop()
    await opDir?.remove()
  })

  /** A running on-chain lease on a member, with the renter's vouchers stored as the job session stores them. */
  const leaseWithVouchers = (member: { key: string, daemon: TestProvider }, amounts: bigint[]): Bytes32 => {
    const ledger = member.daemon.provider.ledger
    const provider = paymentKeyAddress(member.key)
    const gpu = { uuid: member.daemon.provider.inventory.gpus().find((g) => g.state === 'free')?.uuid ?? '', class: 'H100-SXM-80GB' }
    const id = runningLease(ledger, c, { renterKey, provider, pricePerGpuHour: 1_000_000n, gpu })
    amounts.forEach((cumulativeAmount, i) => {
      const v = voucher({ leaseId: id, provider, renterKey, token: c.token, cumulativeAmount, sequence: BigInt(i + 1), domain: c.domain })
      ledger.recordVoucher({ leaseId: id, sequence: v.sequence, cumulativeAmount, signature: v.signature.signature, body: JSON.stringify(v, jsonReplacer) })
    })
    return id
  }

  it('pays the payout address the newest vouchers of leases on two members in one transaction, and nothing the second time', async () => {
    const [a, b] = members as [typeof members[0], typeof members[0]]
    leaseWithVouchers(a, [300_000n, 500_000n])
    leaseWithVouchers(b, [700_000n])
    const init = await runCli(['fleet', 'init', '--name', 'dc-east', '--payout', payout, '--chain-id', String(c.chain.chainId), '--json'], { env: env() })
    expect(init.code, init.stderr).toBe(0)
    for (const [i, m] of members.entries()) {
      const add = await runCli(['fleet', 'add', m.peerId, '--member', addressOf(m.key), '--name', `host-${i}`, ...m.daemon.provider.addresses().flatMap((x) => ['--address', x])], { env: env() })
      expect(add.code, add.stderr).toBe(0)
    }

    // On each host: install the membership and pay into the fleet's payout address (one transaction).
    for (const [i, m] of members.entries()) {
      const joined = await runCli(['fleet', 'join', join(opDir.dir, 'fleet-members', `host-${i}.json`), '--set-payout', '--rpc', c.chain.rpcUrl, '--escrow', c.escrow, '--data-dir', m.daemon.dataDir], { env: env() })
      expect(joined.code, joined.stderr).toBe(0)
      expect(joined.stdout).toContain(`paid into the fleet's payout address ${payout}`)
      expect(await c.client(operatorKey).payoutAddress(addressOf(m.key))).toBe(payout)
    }

    const status = await runCli(['fleet', 'status', '--json'], { env: env() })
    expect(status.code, status.stderr).toBe(0)
    const report = JSON.parse(status.stdout) as { totals: { hosts: number, reachable: number, activeLeases: number } }
    expect(report.totals).toMatchObject({ hosts: 2, reachable: 2, activeLeases: 2 })

    const client = c.client(operatorKey)
    expect(await client.tokenBalance(c.token, payout)).toBe(0n)
    const first = await runCli(['fleet', 'settle', '--rpc', c.chain.rpcUrl, '--escrow', c.escrow, '--json'], { env: env() })
    expect(first.code, first.stderr).toBe(0)
    const paid = JSON.parse(first.stdout) as { txHash: string | null, paid: string, sent: unknown[], paidByMember: Record<string, string> }
    expect(paid.txHash).toMatch(/^0x[0-9a-f]{64}$/)
    expect(paid.sent).toHaveLength(2)
    expect(paid.paid).toBe('1200000')
    expect(paid.paidByMember).toEqual({ [a.peerId]: '500000', [b.peerId]: '700000' })
    expect(await client.tokenBalance(c.token, payout)).toBe(1_200_000n)
    // The members were not paid to their own addresses.
    expect(await client.tokenBalance(c.token, addressOf(a.key))).toBe(0n)

    const second = await runCli(['fleet', 'settle', '--rpc', c.chain.rpcUrl, '--escrow', c.escrow, '--json'], { env: env() })
    expect(second.code, second.stderr).toBe(0)
    expect(JSON.parse(second.stdout)).toMatchObject({ txHash: null, paid: '0', sent: [] })
    expect(await client.tokenBalance(c.token, payout)).toBe(1_200_000n)

    // Each member learns what was paid from the chain, and pays nothing again.
    for (const [m, amount] of [[a, 500_000n], [b, 700_000n]] as const) {
      const own = await settleOnchain({ ledger: m.daemon.provider.ledger, client: c.client(m.key) })
      expect(own.totals.paid).toBe(0n)
      expect(m.daemon.provider.ledger.earnings().find((e) => e.token === c.token)?.redeemed).toBe(amount)
    }
    expect(await client.tokenBalance(c.token, payout)).toBe(1_200_000n)
  }, 120_000)
})
