/**
 * kill -9 of a real `gpumesh provider start` process, then a restart: every accepted lease and its GPUs
 * survive. Runs the built CLI (`npx tsc -b` first) as a child process on a data dir made by `gpumesh init`.
 */
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { request, type GpumeshNode } from '@gpumesh/net'
import { LEASE_PROTOCOL, decodeLeaseDecision, encodeLeaseProposal, type LeaseDecision } from '@gpumesh/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newRenter, proposal, requirements, signedOrder, startClient } from './provider-helpers.js'
import { daemonConfig, initDaemonDir, killChildren, runCli, spawnDaemon, type CliRun, type ProviderJson } from './cli-helpers.js'

const PASSWORD = 'correct horse battery staple'


describe('provider daemon as a process', () => {
  let dataDir: string
  let remove: () => Promise<void>
  let client: GpumeshNode
  const children: ChildProcess[] = []
  const env = { ...process.env, GPUMESH_PASSWORD: PASSWORD, GPUMESH_HOME: '' }

  const gpumesh = async (...args: string[]): Promise<CliRun> => await runCli(args, { env, children })

  const start = async (previousPid: number | null): Promise<{ child: ChildProcess, info: ProviderJson }> => {
    const { child, info, output: printed } = await spawnDaemon(dataDir, { env, children, previousPid })
    const output = printed()
    expect(output).toContain(info.peerId)
    // The dashboard link: the API's URL with its token.
    expect(output).toContain(`dashboard        ${info.api.url}/?token=${info.api.token}`)
    return { child, info }
  }

  const propose = async (info: ProviderJson, gpuCount: number): Promise<LeaseDecision> => {
    const order = signedOrder(newRenter(), client.peerId.toString(), { requirements: requirements({ gpuCount }) })
    const target = info.addresses.map((a) => multiaddr(a))
    return decodeLeaseDecision(await request(client, target, LEASE_PROTOCOL, encodeLeaseProposal(proposal(order))))
  }

  beforeAll(async () => {
    ;({ dir: dataDir, remove } = await initDaemonDir(daemonConfig(4), { env, children }))
    client = await startClient()
  })

  afterAll(async () => {
    killChildren(children)
    await client?.stop()
    await remove?.()
  })

  it('keeps every accepted lease and its GPUs across kill -9 and a restart', async () => {
    const first = await start(null)
    expect((await stat(join(dataDir, 'provider.json'))).mode & 0o777).toBe(0o600)

    const status = await gpumesh('provider', 'status', '--json', '--data-dir', dataDir)
    expect(status.code, status.stderr).toBe(0)
    const parsed = JSON.parse(status.stdout) as { peerId: string, gpus: Array<{ simulated: boolean }> }
    expect(parsed.peerId).toBe(first.info.peerId)
    expect(parsed.gpus).toHaveLength(4)
    expect(parsed.gpus.every((g) => g.simulated)).toBe(true)
    const text = await gpumesh('provider', 'status', '--data-dir', dataDir)
    expect(text.stdout).toContain(`dashboard        ${first.info.api.url}/?token=${first.info.api.token}`)

    // A second daemon on the same data directory would reserve the same GPUs: it is refused, in words.
    const twin = await gpumesh('provider', 'start', '--data-dir', dataDir)
    expect(twin.code).toBe(1)
    expect(twin.stderr).toContain(`gpumesh: Another gpumesh provider (pid ${first.info.pid}) is running from ${dataDir}.`)
    expect(twin.stderr).not.toMatch(/\n\s+at /)

    const decisions = [await propose(first.info, 1), await propose(first.info, 2)]
    const accepted = decisions.map((d) => { if (!d.accepted) throw new Error(`rejected: ${d.code} ${d.message}`); return d.terms })

    first.child.kill('SIGKILL')
    await new Promise((resolve) => first.child.once('exit', resolve))

    const second = await start(first.info.pid)
    expect(second.info.peerId).toBe(first.info.peerId)
    const listed = await gpumesh('leases', '--json', '--data-dir', dataDir)
    expect(listed.code, listed.stderr).toBe(0)
    const { leases } = JSON.parse(listed.stdout) as { leases: Array<{ leaseId: string, state: string, gpus: string[] }> }
    for (const terms of accepted) {
      const lease = leases.find((l) => l.leaseId === terms.leaseId)
      expect(lease?.state).toBe('accepted')
      expect(lease?.gpus).toEqual(terms.gpus)
    }
    // The restarted daemon still holds them: only one GPU is left.
    const more = await propose(second.info, 2)
    expect(more.accepted ? 'ACCEPTED' : more.code).toBe('NO_CAPACITY')

    second.child.kill('SIGTERM')
    const code = await new Promise((resolve) => second.child.once('exit', resolve))
    expect(code).toBe(0)
    expect(existsSync(join(dataDir, 'provider.json'))).toBe(false)
    const stopped = await gpumesh('provider', 'status', '--data-dir', dataDir)
    expect(stopped.code).toBe(1)
    expect(stopped.stderr).toMatch(/not running/)
    const afterStop = await gpumesh('leases', '--data-dir', dataDir)
    expect(afterStop.code).toBe(0)
    expect(afterStop.stdout).toContain('accepted')
    // Prices in token units, as the config quotes them.
    expect(afterStop.stdout).toMatch(/accepted\s+1\s+H100-SXM-80GB\s+2\.00\s/)
  }, 60_000)
})
