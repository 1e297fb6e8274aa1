// Runs the built CLI as a real child process (npm test builds it first).
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, type CliRun } from '../../../test/cli-helpers.js'
import { marketDomain, validateFleetMembership, verifyFleetMembership } from '@gpumesh/protocol'

const PEER = '12D3KooWGzh6Sr4AQHmmJYT7HtjLxaD2PRcCqq2SsQ8mMPV9bQMa'
const MEMBER = '0x1111111111111111111111111111111111111111'

let base: string
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'gpumesh-cli-fleet-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

async function gpumesh (args: string[]): Promise<CliRun> {
  return await runCli(args, { env: { PATH: process.env.PATH ?? '', HOME: base, GPUMESH_PASSWORD: 'pw' }, cwd: base, timeoutMs: 30_000 })
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

describe('gpumesh fleet init / add / join / renew / revoke / status', () => {
  const PAYOUT = '0x2222222222222222222222222222222222222222'

  it('takes a host from the operator\'s "fleet add" to a provider config that carries the membership', async () => {
    const op = join(base, 'fleet-op')
    const host = join(base, 'fleet-host')
    const other = join(base, 'fleet-other')
    const created = await gpumesh(['fleet', 'init', '--name', 'dc-east', '--payout', PAYOUT, '--data-dir', op, '--json'])
    expect(created.code, created.stderr).toBe(0)
    const operator = (JSON.parse(created.stdout) as { operator: string }).operator
    expect(await gpumesh(['fleet', 'init', '--name', 'again', '--payout', PAYOUT, '--data-dir', op])).toMatchObject({ code: 1, stderr: expect.stringContaining('already exists') })

    const ids = []
    for (const dir of [host, other]) {
      const init = await gpumesh(['init', '--data-dir', dir, '--json'])
      expect(init.code, init.stderr).toBe(0)
      ids.push(JSON.parse(init.stdout) as { peerId: string, address: string })
    }
    const [h, o] = ids as [{ peerId: string, address: string }, { peerId: string, address: string }]
    const add = await gpumesh(['fleet', 'add', h.peerId, '--member', h.address, '--name', 'rack1-07', '--days', '3', '--address', '/ip4/127.0.0.1/tcp/1', '--data-dir', op, '--json'])
    expect(add.code, add.stderr).toBe(0)
    const joinFile = (JSON.parse(add.stdout) as { joinFile: string }).joinFile
    expect(joinFile).toBe(join(op, 'fleet-members', 'rack1-07.json'))

    // Another host cannot install it.
    expect(await gpumesh(['fleet', 'join', joinFile, '--data-dir', other])).toMatchObject({ code: 1, stderr: expect.stringContaining(`is for peer ${h.peerId}`) })
    const joined = await gpumesh(['fleet', 'join', joinFile, '--data-dir', host])
    expect(joined.code, joined.stderr).toBe(0)
    expect(joined.stdout).toContain('Joined fleet "dc-east"')
    const config = await readFile(join(host, 'config.yaml'), 'utf8')
    expect(config).toMatch(/fleetMembership: fleet-membership\.json/)
    expect(config).toContain('#') // the template's comments are kept
    const installed = validateFleetMembership(JSON.parse(await readFile(join(host, 'fleet-membership.json'), 'utf8')))
    expect(installed).toMatchObject({ operator, peerId: h.peerId, member: h.address })
    expect(verifyFleetMembership(installed, marketDomain(31337n))).toBe(operator)

    // Renewing re-signs every membership expiring within a week (this one: 3 days).
    const renew = await gpumesh(['fleet', 'renew', '--days', '60', '--data-dir', op, '--json'])
    expect(renew.code, renew.stderr).toBe(0)
    const renewed = (JSON.parse(renew.stdout) as { renewed: Array<{ peerId: string, expiresAt: number }> }).renewed
    expect(renewed.map((r) => r.peerId)).toEqual([h.peerId])
    expect(renewed[0]?.expiresAt ?? 0).toBeGreaterThan(Date.now() + 59 * 86_400_000)
    expect(validateFleetMembership((JSON.parse(await readFile(joinFile, 'utf8')) as { membership: unknown }).membership).expiresAt).toBe(renewed[0]?.expiresAt)

    // Nobody answers: the host is still listed, as unreachable.
    const status = await gpumesh(['fleet', 'status', '--json', '--timeout-ms', '500', '--data-dir', op])
    expect(status.code, status.stderr).toBe(0)
    const report = JSON.parse(status.stdout) as { members: Array<{ peerId: string, reachable: boolean, error: string | null }>, totals: { hosts: number, reachable: number } }
    expect(report.totals).toMatchObject({ hosts: 1, reachable: 0 })
    expect(report.members[0]).toMatchObject({ peerId: h.peerId, reachable: false })
    expect(report.members[0]?.error).toBeTruthy()
    const table = await gpumesh(['fleet', 'status', '--timeout-ms', '500', '--data-dir', op])
    expect(table.stdout).toContain('rack1-07')
    expect(table.stdout).toContain('NO (last seen never seen)')
    expect(table.stdout).toContain('0 of 1 hosts reachable')

    // Revoked: kept in the fleet file even with no matcher to publish to (exit 1 says so), and not re-added.
    const revoke = await gpumesh(['fleet', 'revoke', o.peerId, '--data-dir', op])
    expect(revoke.code).toBe(1)
    expect(revoke.stdout).toContain('no matcher was reachable')
    const fleet = JSON.parse(await readFile(join(op, 'fleet.json'), 'utf8')) as { revocations: Array<{ peerId: string, operator: string }> }
    expect(fleet.revocations).toMatchObject([{ peerId: o.peerId, operator }])
    expect(await gpumesh(['fleet', 'add', o.peerId, '--member', o.address, '--data-dir', op])).toMatchObject({ code: 1, stderr: expect.stringContaining('was revoked') })
  }, 120_000)
})
