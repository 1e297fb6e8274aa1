// @gpumesh/provider figures, on 127.0.0.1:
//   lease_accept_p50_ms      a lease proposal to its signed decision over libp2p on an open connection
//                            (new stream per request, every check, the SQLite transaction, signing)
//   reqres_rtt_p50_ms        the same request/response path with a trivial handler, same run, for scale
//                            (a proposal and a trivial request in turn, so both see the same load)
//   daemon_idle_rss_mb       RSS of a `gpumesh provider start` process with 8 simulated GPUs, idle 30 s
//   daemon_idle_cpu_percent  its CPU time over those 30 s (utime + stime from /proc/<pid>/stat)
//   daemon_hostile_rss_growth_mb  the same daemon's RSS after three rounds of 1,200 hostile streams
//                            (garbage frames, half-sent frames left open, absurd length prefixes, on the
//                            lease and job protocols) less its RSS before them; the rounds' own
//                            figures are beside it. Flat across rounds (not growing by round) means
//                            nothing is kept per stream; half-sent frames are reset at the handler
//                            deadline (the net and provider tests check that).
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Wallet } from 'ethers'
import { multiaddr } from '@multiformats/multiaddr'
import pino from 'pino'
import { createNode, generatePeerKey, handle, request } from '@gpumesh/net'
import {
  JOB_PROTOCOL, LEASE_PROTOCOL, bytesToHex, decodeLeaseDecision, encodeLeaseProposal, marketDomain, signOrder
} from '@gpumesh/protocol'
import { createProvider, parseProviderConfig } from '@gpumesh/provider'
import { median } from './lib/median.mjs'

const CLI = fileURLToPath(new URL('../../packages/cli/bin/gpumesh.js', import.meta.url))
const ECHO = '/gpumesh/bench-echo/1.0.0'
const CLASS = 'H100-SXM-80GB'
const IDLE_MS = 30_000
const HOSTILE_ROUNDS = 3
const HOSTILE_STREAMS = 1_200
const HOSTILE_CONCURRENCY = 40

function figure (values) {
  return { value: Number(median(values).toFixed(3)), unit: 'ms', samples: values.length }
}

async function until (check, timeoutMs = 30_000) {
  const start = Date.now()
  while (!await check()) {
    if (Date.now() - start > timeoutMs) throw new Error('bench setup: condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function order (renter, renterPeerId) {
  const fields = {
    orderId: bytesToHex(randomBytes(32)),
    renter: renter.address,
    renterPeerId,
    requirements: { gpuCount: 1, classes: [CLASS], minMemoryMiB: 0, minComputeCapability: null, region: null, operators: [], escrow: null, allowSimulated: true },
    maxPricePerGpuHour: 10_000_000n,
    durationSec: 3600,
    token: '0x0000000000000000000000000000000000000000',
    chainId: 31337n,
    jobHash: bytesToHex(randomBytes(32)),
    expiresAt: Date.now() + 600_000
  }
  return { type: 'order', ...fields, signature: signOrder(fields, renter.privateKey, marketDomain(31337n)) }
}

async function leaseAccept () {
  const dataDir = await mkdtemp(join(tmpdir(), 'gpumesh-bench-provider-'))
  const config = parseProviderConfig({
    dataDir,
    logLevel: 'silent',
    network: { listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false },
    probe: { simulate: [{ model: CLASS, count: 8 }], intervalSec: 3600 },
    pricing: { perGpuHour: { [CLASS]: '2.00' } },
    leases: { proposalsPerMinutePerPeer: 1_000_000 },
    api: { enabled: false }
  })
  const provider = createProvider(config, {
    identity: { peerKey: await generatePeerKey(), paymentKey: Wallet.createRandom().privateKey },
    logger: pino({ level: 'silent' }),
    nodeOptions: { loopback: true }
  })
  const [client, echo] = await Promise.all([
    createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true }),
    createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })
  ])
  try {
    await provider.start()
    await handle(echo, ECHO, async (req) => req, { rateLimit: { points: 1_000_000, durationMs: 1_000 } })
    await client.dial(provider.node.getMultiaddrs())
    await client.dial(echo.getMultiaddrs())
    const renter = Wallet.createRandom()
    const peerId = client.peerId.toString()
    const target = provider.node.peerId

    // One proposal, then one trivial request, in turn: both see the same load on a shared machine.
    const payload = new Uint8Array(64).fill(7)
    const accept = []
    const rtt = []
    for (let i = 0; i < 330; i++) {
      const bytes = encodeLeaseProposal({ type: 'lease-proposal', order: order(renter, peerId), pricePerGpuHour: 2_000_000n, offerSequence: 1, gpuClass: CLASS })
      const start = performance.now()
      const decision = decodeLeaseDecision(await request(client, target, LEASE_PROTOCOL, bytes))
      const ms = performance.now() - start
      if (!decision.accepted) throw new Error(`bench proposal rejected: ${decision.code} ${decision.message}`)
      if (i >= 30) accept.push(ms)
      // Free the GPU again (outside the timing) so every proposal is an acceptance.
      provider.ledger.transitionLease(decision.terms.leaseId, 'terminated', 'BENCH')
      const echoStart = performance.now()
      await request(client, echo.peerId, ECHO, payload)
      if (i >= 30) rtt.push(performance.now() - echoStart)
    }
    return { lease_accept_p50_ms: figure(accept), reqres_rtt_p50_ms: figure(rtt) }
  } finally {
    await Promise.all([client.stop(), echo.stop()])
    await provider.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

async function cpuTicks (pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime (fields 14 and 15)
}

async function rssMiB (pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
  return kb / 1024
}

async function daemonIdle () {
  if (!existsSync('/proc/self/stat')) return {}
  const dataDir = await mkdtemp(join(tmpdir(), 'gpumesh-bench-daemon-'))
  const env = { ...process.env, GPUMESH_PASSWORD: 'bench', GPUMESH_HOME: '' }
  const clkTck = Number((await promisify(execFile)('getconf', ['CLK_TCK']).catch(() => ({ stdout: '100' }))).stdout.trim()) || 100
  await promisify(execFile)(process.execPath, [CLI, 'init', '--data-dir', dataDir], { env })
  await writeFile(join(dataDir, 'config.yaml'), [
    'probe:', `  simulate: [{ model: ${CLASS}, count: 8 }]`,
    'network:', '  listen: [/ip4/127.0.0.1/tcp/0]', '  mdns: false',
    'api:', '  port: 0',
    'pricing:', `  perGpuHour: { ${CLASS}: "2.00" }`, ''
  ].join('\n'))
  const child = spawn(process.execPath, [CLI, 'provider', 'start', '--data-dir', dataDir, '--log-level', 'warn'], { env, stdio: 'ignore' })
  try {
    await until(() => existsSync(join(dataDir, 'provider.json')))
    await new Promise((resolve) => setTimeout(resolve, 2_000)) // let start-up settle
    const before = await cpuTicks(child.pid)
    const t0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS))
    const ticks = (await cpuTicks(child.pid)) - before
    const seconds = (performance.now() - t0) / 1000
    const idleRss = await rssMiB(child.pid)
    const info = JSON.parse(await readFile(join(dataDir, 'provider.json'), 'utf8'))
    const rounds = await hostileRounds(child.pid, info.addresses)
    const growth = rounds.at(-1) - idleRss
    return {
      daemon_idle_rss_mb: { value: Number(idleRss.toFixed(1)), unit: 'MiB', gpus: 8 },
      daemon_idle_cpu_percent: { value: Number((100 * ticks / clkTck / seconds).toFixed(2)), unit: '%', seconds: Number(seconds.toFixed(1)) },
      daemon_hostile_rss_growth_mb: {
        value: Number(growth.toFixed(1)),
        unit: 'MiB',
        baseline: Number(idleRss.toFixed(1)),
        rounds: rounds.map((r) => r.toFixed(1)).join('/'),
        streams: HOSTILE_ROUNDS * HOSTILE_STREAMS
      }
    }
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** One hostile stream: what it sends, and whether it then leaves the stream open (a half-sent frame). */
function hostileStream (i) {
  switch (i % 4) {
    case 0: return { protocol: LEASE_PROTOCOL, bytes: randomBytes(1 + (i % 2000)), hold: false } // garbage
    case 1: return { protocol: LEASE_PROTOCOL, bytes: Uint8Array.from([0xe8, 0x07, ...randomBytes(100)]), hold: true } // 1000 announced, 100 sent
    case 2: return { protocol: JOB_PROTOCOL, bytes: Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]), hold: false } // a 4 GiB length prefix
    default: return { protocol: JOB_PROTOCOL, bytes: Uint8Array.from([50, ...randomBytes(50)]), hold: false } // a whole frame of noise
  }
}

/** Sends one hostile stream and waits until the daemon has closed or reset it (at most 20 s). */
async function sendHostile (client, target, i) {
  const { protocol, bytes, hold } = hostileStream(i)
  let stream
  try {
    stream = await client.dialProtocol(target, protocol)
  } catch {
    return // refused (inbound stream cap, rate limit): that is the daemon holding up
  }
  const closed = new Promise((resolve) => {
    stream.addEventListener('close', resolve, { once: true })
    setTimeout(resolve, 20_000).unref()
  })
  try {
    stream.send(bytes)
    if (!hold) await stream.close().catch(() => {})
  } catch {
    // the daemon reset it already
  }
  await closed
  if (stream.status !== 'closed' && stream.status !== 'reset') stream.abort(new Error('bench: gave up waiting'))
}

async function hostileRounds (pid, addresses) {
  const targets = addresses.map((a) => multiaddr(a))
  const out = []
  for (let round = 0; round < HOSTILE_ROUNDS; round++) {
    const clients = await Promise.all(Array.from({ length: 4 }, async () => createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true })))
    try {
      let next = 0
      await Promise.all(Array.from({ length: HOSTILE_CONCURRENCY }, async (_, lane) => {
        const client = clients[lane % clients.length]
        while (next < HOSTILE_STREAMS) await sendHostile(client, targets, next++)
      }))
    } finally {
      await Promise.all(clients.map(async (c) => c.stop()))
    }
    await new Promise((resolve) => setTimeout(resolve, 3_000)) // let the daemon drop what it held
    out.push(await rssMiB(pid))
  }
  return out
}

export async function run () {
  return { ...await leaseAccept(), ...await daemonIdle() }
}
