import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, vi } from 'vitest'
import { paymentKeyAddress } from '@gpumesh/protocol'
import { EscrowClient, startDevChain } from '../src/index.js'

const ESCROW = '0x5555555555555555555555555555555555555555'

async function answers (rpcUrl: string): Promise<boolean> {
  try {
    await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' })
    return true
  } catch {
    return false
  }
}

/** A port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return typeof address === 'object' && address !== null ? address.port : 0
}

describe('dev chain', () => {
  it('starts anvil on a free port with funded keys and stops it for good', async () => {
    const chain = await startDevChain({ chainId: 31_338n })
    try {
      expect(chain.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(chain.chainId).toBe(31_338n)
      expect(chain.keys).toHaveLength(10)
      const client = new EscrowClient({ rpcUrl: chain.rpcUrl, escrow: ESCROW })
      expect(await client.chainId()).toBe(31_338n)
      expect(await client.tokenBalance(ESCROW, paymentKeyAddress(chain.keys[0] as string)).catch((err: unknown) => err)).toMatchObject({ name: 'ChainError' })
      client.close()
    } finally {
      await chain.stop()
    }
    expect(await answers(chain.rpcUrl)).toBe(false)
    await chain.stop() // twice is harmless
  })

  it('stops when its signal aborts', async () => {
    const controller = new AbortController()
    const chain = await startDevChain({ signal: controller.signal })
    expect(await answers(chain.rpcUrl)).toBe(true)
    controller.abort()
    await chain.stop()
    expect(await answers(chain.rpcUrl)).toBe(false)
  })

  it('leaves no anvil behind when the process that started it is killed', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/dev-chain-child.mjs', import.meta.url))
    const child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
    const rpcUrl = await new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        const match = /RPC (\S+)\n/.exec(out)
        if (match !== null) resolve(match[1] as string)
      })
      child.once('exit', (code) => { reject(new Error(`the child exited (${code}) before its chain started`)) })
    })
    expect(await answers(rpcUrl)).toBe(true)
    child.kill('SIGKILL')
    await exited
    await vi.waitFor(async () => { expect(await answers(rpcUrl)).toBe(false) }, { timeout: 10_000, interval: 50 })
  })

  it('says in a sentence, with a retryable ChainError, when the node cannot be reached', async () => {
    const client = new EscrowClient({ rpcUrl: `http://127.0.0.1:${await closedPort()}`, escrow: ESCROW, rpcTimeoutMs: 2000 })
    const err = await client.account(ESCROW, ESCROW).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'ChainError', code: 'NETWORK', retryable: true })
    expect((err as Error).message).toMatch(/^The node at http:\/\/127\.0\.0\.1:\d+ could not be reached .*try again\.$/)
    client.close()
  })
})
