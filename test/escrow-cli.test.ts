/**
 * A renter's escrow account through the built CLI against a real EVM node: deploy (escrow and test
 * token), deposit, status, announce a withdrawal, a withdrawal refused before the delay in a
 * sentence, and taken after it; bad input is a usage error, never a stack trace.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encryptKeystoreJson } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePeerKey, peerKeyToBytes } from '@gpumesh/net'
import { paymentKeyAddress } from '@gpumesh/protocol'
import { startDevChain, type DevChain } from '@gpumesh/settlement'
import { runCli } from './cli-helpers.js'

const PASSWORD = 'escrow-cli'

describe('gpumesh escrow', () => {
  let chain: DevChain
  let dir: string
  let renter: string
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    chain = await startDevChain()
    dir = await mkdtemp(join(tmpdir(), 'gpumesh-escrow-'))
    const key = chain.keys[4] as string
    renter = paymentKeyAddress(key)
    // What `gpumesh init --role renter` leaves, with a light scrypt (every command here unlocks it).
    await writeFile(join(dir, 'peer.key'), peerKeyToBytes(await generatePeerKey()), { mode: 0o600 })
    await writeFile(join(dir, 'payment-key.json'), await encryptKeystoreJson({ address: renter, privateKey: key }, PASSWORD, { scrypt: { N: 1 << 10 } }), { mode: 0o600 })
    env = { ...process.env, GPUMESH_HOME: dir, GPUMESH_PASSWORD: PASSWORD, GPUMESH_RPC_URL: chain.rpcUrl }
  }, 60_000)
  afterAll(async () => {
    await chain?.stop()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('deploys, deposits, shows, announces and withdraws after the delay', async () => {
    const deployed = await runCli(['escrow', 'deploy', '--withdrawal-delay', '3600', '--test-token', '--mint', '100', '--json'], { env })
    expect(deployed.stderr).toBe('')
    expect(deployed.code).toBe(0)
    const { escrow, token, chainId } = JSON.parse(deployed.stdout) as { escrow: string, token: string, chainId: string }
    expect(chainId).toBe(chain.chainId.toString())
    const withChain = { ...env, GPUMESH_ESCROW: escrow, GPUMESH_TOKEN: token }

    const deposit = await runCli(['escrow', 'deposit', '25.50'], { env: withChain })
    expect(deposit.code).toBe(0)
    expect(deposit.stdout).toContain('Deposited 25.50')
    const tooMuch = await runCli(['escrow', 'deposit', '1000'], { env: withChain })
    expect(tooMuch.code).toBe(1)
    expect(tooMuch.stderr).toMatch(/holds 74.50 of token .*, less than the 1,?000.00 to deposit/)

    const announce = await runCli(['escrow', 'announce-withdrawal', '10'], { env: withChain })
    expect(announce.code).toBe(0)
    const status = JSON.parse((await runCli(['escrow', 'status', '--json'], { env: withChain })).stdout) as Record<string, string>
    expect(status).toMatchObject({ renter, balance: '25500000', pendingWithdrawal: '10000000', available: '15500000' })

    const early = await runCli(['escrow', 'withdraw'], { env: withChain })
    expect(early.code).toBe(1)
    expect(early.stderr).toMatch(/^gpumesh: The escrow refused the withdrawal: it unlocks at .* by the chain's clock\. Run this again then\.\n$/)

    await fetch(chain.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'evm_increaseTime', params: [3601] }) })
    await fetch(chain.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'evm_mine', params: [] }) })
    const withdrawn = await runCli(['escrow', 'withdraw'], { env: withChain })
    expect(withdrawn.code).toBe(0)
    expect(withdrawn.stdout).toContain('Withdrew 10.00')
    const after = JSON.parse((await runCli(['escrow', 'status', '--json'], { env: withChain })).stdout) as Record<string, string>
    expect(after).toMatchObject({ balance: '15500000', pendingWithdrawal: '0', available: '15500000' })
  }, 120_000)

  it('says what is missing or wrong in a sentence, exit 2', async () => {
    const noChain = await runCli(['escrow', 'status'], { env: { ...env, GPUMESH_RPC_URL: '' } })
    expect(noChain.code).toBe(2)
    expect(noChain.stderr).toContain('pass --rpc URL or set GPUMESH_RPC_URL')
    const badAmount = await runCli(['escrow', 'deposit', 'lots', '--escrow', renter, '--token', renter], { env })
    expect(badAmount.code).toBe(2)
    expect(badAmount.stderr).toMatch(/^gpumesh: AMOUNT: "lots"/)
    const badAddress = await runCli(['escrow', 'status', '--escrow', '0x1234'], { env })
    expect(badAddress.code).toBe(2)
    expect(badAddress.stderr).toContain('"0x1234" is not an Ethereum address')
  }, 60_000)
})
