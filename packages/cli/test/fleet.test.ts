// Runs the built CLI as a real child process (npm test builds it first).
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { marketDomain, validateFleetMembership, verifyFleetMembership } from '@gpumesh/protocol'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const cli = join(root, 'packages/cli/bin/gpumesh.js')
const PEER = '12D3KooWGzh6Sr4AQHmmJYT7HtjLxaD2PRcCqq2SsQ8mMPV9bQMa'
const MEMBER = '0x1111111111111111111111111111111111111111'

let base: string
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'gpumesh-cli-fleet-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

async function gpumesh (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? '', HOME: base, GPUMESH_PASSWORD: 'pw' }, timeout: 30_000, cwd: base },
      (err, stdout, stderr) => {
        resolve({ code: err == null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
      })
  })
}

describe('gpumesh fleet sign', () => {
  it('signs a membership for a node with the operator\'s key, for the chain given, and writes it where asked', async () => {
    const dir = join(base, 'operator')
    const init = await gpumesh(['init', '--role', 'renter', '--data-dir', dir, '--json'])
    expect(init.code, init.stderr).toBe(0)
    const operator = (JSON.parse(init.stdout) as { address: string }).address
    const run = await gpumesh(['fleet', 'sign', '--peer-id', PEER, '--member', MEMBER, '--days', '7', '--chain-id', '8453', '--out', 'member.json', '--data-dir', dir])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain(`operator ${operator}`)
    expect(run.stdout).toContain('set offers.fleetMembership to that file')
    const file = join(base, 'member.json')
    expect((await stat(file)).mode & 0o777).toBe(0o644)
    const membership = validateFleetMembership(JSON.parse(await readFile(file, 'utf8')))
    expect(membership).toMatchObject({ operator, member: MEMBER, peerId: PEER })
    expect(membership.expiresAt - Date.now()).toBeGreaterThan(7 * 86_400_000 - 60_000)
    expect(membership.expiresAt - Date.now()).toBeLessThanOrEqual(7 * 86_400_000)
    expect(verifyFleetMembership(membership, marketDomain(8453n))).toBe(operator)
    expect(() => verifyFleetMembership(membership, marketDomain(31337n))).toThrow()
  })

  it('says what is wrong with its options', async () => {
    const dir = join(base, 'operator')
    expect(await gpumesh(['fleet', 'sign', '--member', MEMBER, '--data-dir', dir])).toMatchObject({ code: 2, stderr: expect.stringContaining('--peer-id is required') })
    expect(await gpumesh(['fleet', 'sign', '--peer-id', 'nope', '--member', MEMBER, '--data-dir', dir])).toMatchObject({ code: 2, stderr: 'gpumesh: --peer-id: "nope" is not a libp2p peer id.\n' })
    expect(await gpumesh(['fleet', 'sign', '--peer-id', PEER, '--member', '0x12', '--data-dir', dir])).toMatchObject({ code: 2, stderr: 'gpumesh: --member: "0x12" is not an Ethereum address.\n' })
    expect(await gpumesh(['fleet', 'sign', '--peer-id', PEER, '--member', MEMBER, '--days', '0', '--data-dir', dir])).toMatchObject({ code: 2, stderr: expect.stringContaining('--days must be') })
  })
})
