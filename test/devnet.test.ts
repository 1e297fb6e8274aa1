/**
 * `npm start` (→ `gpumesh devnet`) on a fresh directory, the way a new user runs it: the whole market
 * runs to the end, and its summary is checked against the ledger of the provider that ran the job and
 * against the chain. With --keep, Ctrl-C stops every process the devnet started. On a machine with a
 * GPU (a stand-in nvidia-smi here) the first provider offers it and the simulated one does not. Runs
 * the built CLI (`npx tsc -b` first); Linux only for the process-tree check (it reads /proc).
 */
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { JsonRpcProvider } from 'ethers'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { openLedger } from '@gpumesh/ledger'
import { EscrowClient } from '@gpumesh/settlement'
import type { Address } from '@gpumesh/protocol'
import { runCli, spawnCli } from './cli-helpers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

interface Summary {
  leaseId: string
  provider: { name: string, address: Address, peerId: string, simulated: boolean, gpus: string[] }
  state: string
  exitCode: number | null
  gpuSeconds: number
  usagePeriods: number
  paid: string
  redemption: { txHash: string, blockNumber: number | null, paid: string }
  providerBalanceBefore: string
  model: string | null
  chain: { rpcUrl: string, chainId: string, escrow: Address, token: Address }
  matcher: string[]
  dir: string
  kept: boolean
}

/** Every descendant of `pid` (children, their children, …), from /proc. */
function descendants (pid: number): number[] {
  const parent = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // pid (comm) state ppid …: comm may hold spaces, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      parent.set(Number(entry), ppid)
    } catch {
      // Gone meanwhile.
    }
  }
  const out: number[] = []
  const walk = (p: number): void => {
    for (const [child, pp] of parent) if (pp === p) { out.push(child); walk(child) }
  }
  walk(pid)
  return out
}

/** True while the process exists and is not a zombie. */
function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

describe('npm start (gpumesh devnet)', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })

  it('runs to the end with --keep on a fresh directory; the summary matches the ledger and the chain; Ctrl-C stops every process it started', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'gpumesh-devnet-test-')), 'net')
    dirs.push(join(dir, '..'))
    const devnet = spawnCli(['devnet', '--keep', '--json', '--dir', dir], { cwd: ROOT })
    const { child, exited } = devnet
    try {
      await vi.waitFor(() => {
        if (child.exitCode != null) throw new Error(`devnet exited ${child.exitCode}: ${devnet.stderr()}`)
        if (!devnet.stderr().includes('devnet ready')) throw new Error(`not ready yet; its last lines:\n${devnet.stderr().split('\n').slice(-12).join('\n')}`)
      }, { timeout: 100_000, interval: 200 })

      // Every stage was shown as it happened.
      for (const stage of ['chain up', 'escrow 0x', 'matcher ', 'offer in book', 'deposited', 'match + lease', 'job running', 'job │ step 1/', 'usage report', 'voucher ', 'artifacts ', 'redeemed ', 'dashboard http://127.0.0.1:']) {
        expect(devnet.stderr()).toContain(stage)
      }
      expect(devnet.stderr()).toMatch(/SIMULATED|real GPU/)
      const s = JSON.parse(devnet.stdout()) as Summary
      expect(s).toMatchObject({ state: 'completed', exitCode: 0, dir, kept: true })

      // The ledger of the provider that ran the job.
      const ledger = openLedger(join(dir, s.provider.name, 'ledger.sqlite'))
      try {
        const lease = ledger.getLease(s.leaseId)
        expect(lease).toMatchObject({ state: 'completed', provider: s.provider.address, escrow: s.chain.escrow, token: s.chain.token })
        const periods = ledger.usagePeriods(s.leaseId)
        expect(periods.length).toBe(s.usagePeriods)
        expect(periods.length).toBeGreaterThanOrEqual(2)
        expect(periods.at(-1)?.final).toBe(true)
        const gpuMs = periods.reduce((sum, p) => sum + p.gpuMs, 0n)
        expect(Math.abs(Number(gpuMs) / 1000 - s.gpuSeconds)).toBeLessThan(0.01)
        const paid = BigInt(s.paid)
        expect(paid).toBeGreaterThan(0n)
        expect(periods.at(-1)?.cumulativeAmount).toBe(paid)
        expect(ledger.latestVoucher(s.leaseId)?.cumulativeAmount).toBe(paid)
        expect(ledger.leaseSettlement(s.leaseId)?.redeemed).toBe(paid)
        expect(ledger.listSettlements().filter((b) => b.state === 'confirmed').map((b) => b.txHash)).toEqual([s.redemption.txHash])
      } finally {
        ledger.close()
      }

      // The chain: the redemption succeeded at the escrow and paid the provider exactly that.
      const rpc = new JsonRpcProvider(s.chain.rpcUrl, undefined, { staticNetwork: true })
      try {
        const receipt = await rpc.getTransactionReceipt(s.redemption.txHash)
        expect(receipt?.status).toBe(1)
        expect(receipt?.to?.toLowerCase()).toBe(s.chain.escrow.toLowerCase())
      } finally {
        rpc.destroy()
      }
      const chain = new EscrowClient({ rpcUrl: s.chain.rpcUrl, escrow: s.chain.escrow })
      expect(s.providerBalanceBefore).toBe('0')
      expect(await chain.tokenBalance(s.chain.token, s.provider.address)).toBe(BigInt(s.paid))
      expect(BigInt(s.redemption.paid)).toBe(BigInt(s.paid))

      // The trained weights came back, and training lowered the loss.
      const model = JSON.parse(await readFile(s.model ?? '', 'utf8')) as { steps: number, loss: number }
      expect(model.steps).toBe(40)
      expect(model.loss).toBeLessThan(0.2)

      // Ctrl-C: every process it started (anvil, the matcher, both providers) is gone, and it exits 0.
      const pids = descendants(child.pid as number)
      expect(pids.length).toBeGreaterThanOrEqual(4)
      child.kill('SIGINT')
      expect(await exited).toBe(0)
      await vi.waitFor(() => { expect(pids.filter(alive)).toEqual([]) }, { timeout: 5_000, interval: 100 })
      expect(existsSync(join(dir, s.provider.name, 'provider.json'))).toBe(false)
    } finally {
      // A failed check still stops the market: SIGINT lets the devnet stop its children first.
      if (child.exitCode == null) {
        child.kill('SIGINT')
        const timer = setTimeout(() => { child.kill('SIGKILL') }, 20_000)
        await exited
        clearTimeout(timer)
      }
    }
  }, 150_000)

  it('refuses a --dir that holds something, with a sentence, and starts nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gpumesh-devnet-used-'))
    dirs.push(dir)
    await writeFile(join(dir, 'notes.txt'), 'mine\n')
    const run = await runCli(['devnet', '--dir', dir])
    expect(run.code).toBe(2)
    expect(run.stderr).toBe(`gpumesh: --dir ${dir} is not empty; give a new or empty directory (the devnet writes keys and data directories there).\n`)
    expect(readdirSync(dir)).toEqual(['notes.txt'])
  })

  it('npm start on a machine with a GPU (a stand-in nvidia-smi replaying an RTX 4090 capture) leases it from provider-a, exits 0 and removes its temporary directory', async () => {
    // The stand-in answers the probe as nvidia-smi does; provider-b, simulated, must not offer that GPU too.
    const env = { ...process.env, GPUMESH_NVIDIA_SMI: join(ROOT, 'packages/provider/test/fixtures/bin/nvidia-smi'), FAKE_SMI_CAPTURE: 'rtx4090x1.csv' }
    const run = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve, reject) => {
      const child = spawn('npm', ['start', '--silent', '--', '--json'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
      const timer = setTimeout(() => { child.kill('SIGINT'); reject(new Error(`npm start did not finish: ${stderr}`)) }, 140_000)
      child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
    })
    expect(run.code, run.stderr).toBe(0)
    const s = JSON.parse(run.stdout) as Summary & { provider: { gpuClass: string } }
    expect(s).toMatchObject({ state: 'completed', exitCode: 0, kept: false, provider: { name: 'provider-a', simulated: false, gpuClass: 'RTX-4090' } })
    expect(run.stderr).toContain('1 real GPU(s) on this machine (RTX-4090)')
    expect(run.stderr).toMatch(/offer in book {2}provider-a: 1 × RTX-4090 at/)
    expect(run.stderr).toMatch(/offer in book {2}provider-b: 2 × A100-SXM4-80GB \(simulated\)/)
    expect(run.stderr).not.toMatch(/provider-b: \d+ × RTX-4090/)
    expect(BigInt(s.paid)).toBeGreaterThan(0n)
    expect(s.redemption.paid).toBe(s.paid)
    expect(s.redemption.txHash).toMatch(/^0x[0-9a-f]{64}$/)
    expect(s.dir.startsWith(tmpdir())).toBe(true)
    expect(existsSync(s.dir)).toBe(false)
  }, 150_000)
})
