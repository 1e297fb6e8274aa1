// @gpumesh/net figures: ping, request/response on a new stream, a round trip on an open frame stream,
// and gossip propagation across 20 nodes in one process, all on 127.0.0.1.
import { createNode, handle, handleFrameStreams, openFrameStream, publish, request } from '@gpumesh/net'
import { median } from './lib/median.mjs'

const LOCAL = { listen: ['/ip4/127.0.0.1/tcp/0'], loopback: true }
const ECHO = '/gpumesh/bench-echo/1.0.0'
const FRAME_ECHO = '/gpumesh/bench-frame-echo/1.0.0'
const TOPIC = '/gpumesh/bench-gossip/1'
const GOSSIP_NODES = 20

function figure (values) {
  return { value: Number(median(values).toFixed(3)), unit: 'ms', samples: values.length }
}

async function timed (count, warmup, fn) {
  for (let i = 0; i < warmup; i++) await fn(i)
  const out = []
  for (let i = 0; i < count; i++) {
    const start = performance.now()
    await fn(i)
    out.push(performance.now() - start)
  }
  return out
}

async function until (check, timeoutMs = 20_000) {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('bench setup: condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function pointToPoint () {
  const [server, client] = await Promise.all([createNode(LOCAL), createNode(LOCAL)])
  try {
    await handle(server, ECHO, async (req) => req, { rateLimit: { points: 1_000_000, durationMs: 1_000 } })
    await handleFrameStreams(server, FRAME_ECHO, async (stream) => {
      for await (const frame of stream) await stream.send(frame)
    })
    await client.dial(server.getMultiaddrs())
    const payload = new Uint8Array(64).fill(7)

    const ping = await timed(200, 20, async () => client.services.ping.ping(server.peerId))
    const reqres = await timed(300, 30, async () => request(client, server.peerId, ECHO, payload))
    const stream = await openFrameStream(client, server.peerId, FRAME_ECHO)
    const openStream = await timed(500, 50, async () => {
      await stream.send(payload)
      await stream.read()
    })
    await stream.close()
    return {
      ping_rtt_p50_ms: figure(ping),
      reqres_rtt_p50_ms: figure(reqres),
      reqres_open_stream_rtt_p50_ms: figure(openStream)
    }
  } finally {
    await Promise.all([server.stop(), client.stop()])
  }
}

async function gossipPropagation () {
  const nodes = await Promise.all(Array.from({ length: GOSSIP_NODES }, async () => createNode(LOCAL)))
  try {
    const arrivals = new Map()
    nodes.forEach((node, index) => {
      node.services.pubsub.subscribe(TOPIC)
      node.services.pubsub.addEventListener('message', (evt) => {
        const id = new DataView(evt.detail.data.buffer, evt.detail.data.byteOffset).getUint32(0)
        const seen = arrivals.get(id)
        if (seen != null && !seen.nodes.has(index)) {
          seen.nodes.add(index)
          if (seen.nodes.size === GOSSIP_NODES - 1) seen.done(performance.now())
        }
      })
    })
    // each node dials the next four: a connected graph of degree about eight
    for (let i = 0; i < nodes.length; i++) {
      for (let k = 1; k <= 4; k++) await nodes[i].dial(nodes[(i + k) % nodes.length].getMultiaddrs())
    }
    await until(() => nodes.every((node) => node.services.pubsub.getMeshPeers(TOPIC).length >= 4))

    const samples = []
    for (let i = 0; i < 40; i++) {
      const from = i % nodes.length
      const data = new Uint8Array(1024)
      new DataView(data.buffer).setUint32(0, i)
      let done
      const finished = new Promise((resolve) => { done = resolve })
      const entry = { nodes: new Set([from]), done }
      arrivals.set(i, entry)
      const start = performance.now()
      await publish(nodes[from], TOPIC, data)
      const end = await Promise.race([finished, new Promise((resolve) => setTimeout(() => resolve(null), 5_000))])
      if (end == null) throw new Error(`gossip message ${i} reached ${entry.nodes.size}/${GOSSIP_NODES} nodes`)
      if (i >= 5) samples.push(end - start) // the first few warm up the streams
    }
    return { gossip_propagation_p50_ms: figure(samples) }
  } finally {
    await Promise.all(nodes.map(async (node) => node.stop()))
  }
}

export async function run () {
  return { ...await pointToPoint(), ...await gossipPropagation() }
}
