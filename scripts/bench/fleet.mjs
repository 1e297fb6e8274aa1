// `gpumesh fleet status` across a simulated fleet of 50 hosts in one process, on 127.0.0.1: 50 libp2p
// nodes each serving the fleet protocol (FleetService: the operator-signed request is verified, the
// nonce remembered, the status encoded and capped) with a fixed status, and the operator asking all of
// them at once with askFleet (bounded concurrency, per-host deadline) as the command does.
//   fleet_status_50_hosts_ms        a fresh operator node each time: dials, handshakes and 50 answers
//   fleet_status_50_hosts_warm_ms   the same node again, connections already open
//   reqres_50_sequential_ms         the floor beside it: 50 plain request/response round trips, one
//                                   host after another, on open connections, in the same run
//   connect_50_hosts_ms             what the fresh node spends on connections alone (16 dials at once,
//                                   as askFleet's default concurrency): most of the cold figure
import { createNode, handle, request } from '@gpumesh/net'
import { marketDomain, paymentKeyAddress, signFleetMembership } from '@gpumesh/protocol'
import { FleetService, askFleet } from '@gpumesh/provider'
import { Wallet } from 'ethers'
import pino from 'pino'
import { median } from './lib/median.mjs'

const HOSTS = 50
const RUNS = 7
const CHAIN_ID = 31337n
const LOCAL = { listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true }
const ECHO = '/gpumesh/bench-fleet-echo/1.0.0'

function figure (values, extra = {}) {
  return { value: Number(median(values).toFixed(3)), unit: 'ms', samples: values.length, hosts: HOSTS, ...extra }
}

export async function run () {
  const operatorKey = Wallet.createRandom().privateKey
  const operator = paymentKeyAddress(operatorKey)
  const logger = pino({ level: 'silent' })
  const clock = { now: () => Date.now(), monotonicNow: () => performance.now() }
  const hosts = await Promise.all(Array.from({ length: HOSTS }, async () => createNode(LOCAL)))
  const services = []
  try {
    for (const node of hosts) {
      const member = Wallet.createRandom().address
      const peerId = node.peerId.toString()
      const fields = { operator, member, peerId, expiresAt: Date.now() + 86_400_000 }
      const membership = { ...fields, proof: signFleetMembership(fields, operatorKey, marketDomain(CHAIN_ID)) }
      const status = {
        type: 'fleet-status', peerId, member, version: '0.1.0', startedAt: Date.now(),
        gpus: [{ state: 'free', count: 6 }, { state: 'leased', count: 2 }], activeLeases: 1,
        earnings: [{ token: operator, chainId: CHAIN_ID, accrued: 1_000_000n, vouchered: 900_000n, redeemed: 0n, outstanding: 1_000_000n }],
        lastError: null, offerProblem: null
      }
      const service = new FleetService({
        node, clock, logger, membership: () => membership, chainId: CHAIN_ID,
        status: () => status,
        vouchers: () => ({ type: 'fleet-vouchers', peerId, member, escrow: operator, chainId: CHAIN_ID, vouchers: [] })
      })
      await service.start()
      services.push(service)
      await handle(node, ECHO, async (bytes) => bytes)
    }
    const members = hosts.map((n) => ({ peerId: n.peerId.toString(), addresses: n.getMultiaddrs().map(String) }))
    const ask = async (node) => {
      const answers = await askFleet('status', { node, operatorKey, chainId: CHAIN_ID, members, timeoutMs: 10_000 })
      const failed = answers.filter((a) => !a.ok)
      if (failed.length > 0) throw new Error(`fleet status: ${failed.length} hosts did not answer (${failed[0].code}: ${failed[0].error})`)
    }

    const cold = []
    for (let i = 0; i < RUNS; i++) {
      const node = await createNode(LOCAL)
      try {
        const start = performance.now()
        await ask(node)
        if (i > 0) cold.push(performance.now() - start) // the first warms the code paths
      } finally {
        await node.stop()
      }
    }

    const connect = []
    for (let i = 0; i < RUNS - 1; i++) {
      const node = await createNode(LOCAL)
      try {
        const start = performance.now()
        let next = 0
        await Promise.all(Array.from({ length: 16 }, async () => {
          while (next < hosts.length) await node.dial(hosts[next++].getMultiaddrs())
        }))
        connect.push(performance.now() - start)
      } finally {
        await node.stop()
      }
    }

    const operatorNode = await createNode(LOCAL)
    try {
      await ask(operatorNode)
      const warm = []
      for (let i = 0; i < RUNS; i++) {
        const start = performance.now()
        await ask(operatorNode)
        warm.push(performance.now() - start)
      }
      const payload = new Uint8Array(256)
      const sequential = []
      for (let i = 0; i < RUNS; i++) {
        const start = performance.now()
        for (const host of hosts) await request(operatorNode, host.peerId, ECHO, payload)
        sequential.push(performance.now() - start)
      }
      return {
        fleet_status_50_hosts_ms: figure(cold, { connections: 'new' }),
        fleet_status_50_hosts_warm_ms: figure(warm, { connections: 'open' }),
        reqres_50_sequential_ms: figure(sequential, { connections: 'open' }),
        connect_50_hosts_ms: figure(connect, { connections: 'new' })
      }
    } finally {
      await operatorNode.stop()
    }
  } finally {
    for (const s of services) await s.stop()
    await Promise.all(hosts.map(async (n) => n.stop()))
  }
}
