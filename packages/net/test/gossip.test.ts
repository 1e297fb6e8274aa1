import { PublishError, publish, validateTopic } from '@gpumesh/net'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startNodes, stopAll } from './nodes.js'
import type { GpumeshNode } from '@gpumesh/net'

const TOPIC = '/gpumesh/test-offers/1'

describe('gossip', () => {
  const nodes: GpumeshNode[] = []
  const received = new Map<string, string[]>()

  beforeAll(async () => {
    nodes.push(...await startNodes(3, { gossip: { maxMessageBytes: 4096 } }))
    const [a, b, c] = nodes as [GpumeshNode, GpumeshNode, GpumeshNode]
    for (const node of nodes) {
      received.set(node.peerId.toString(), [])
      node.services.pubsub.subscribe(TOPIC)
      node.services.pubsub.addEventListener('message', (evt) => {
        received.get(node.peerId.toString())?.push(new TextDecoder().decode(evt.detail.data))
      })
    }
    // a line: a - b - c, so c only hears a through b's forwarding
    await a.dial(b.getMultiaddrs())
    await b.dial(c.getMultiaddrs())
    await vi.waitFor(() => { expect(a.services.pubsub.getSubscribers(TOPIC).length === 1 && c.services.pubsub.getSubscribers(TOPIC).length === 1).toBeTruthy() }, { timeout: 10_000 })
  })

  afterAll(async () => { await stopAll(nodes) })

  it('reaches the other two nodes from one', async () => {
    const [a, b, c] = nodes as [GpumeshNode, GpumeshNode, GpumeshNode]
    // the mesh forms on the first heartbeat; publishing before it still floods to subscribers
    await publish(a, TOPIC, new TextEncoder().encode('offer-1'))
    await vi.waitFor(() => { expect(received.get(b.peerId.toString())?.includes('offer-1') === true &&
      received.get(c.peerId.toString())?.includes('offer-1') === true).toBeTruthy() }, { timeout: 10_000 })
    expect(received.get(a.peerId.toString())).toEqual([])
  })

  it('refuses a message over the size cap with a typed error instead of dropping it', async () => {
    const [a] = nodes as [GpumeshNode]
    const err = await publish(a, TOPIC, new Uint8Array(4097)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PublishError)
    expect((err as PublishError).code).toBe('TOO_LARGE')
    await expect(publish(a, TOPIC, new Uint8Array(4096))).resolves.toBeDefined()
  })

  it('a validating relay passes on what its judge accepts, and no more than the per-author limit', async () => {
    const [a, b, c] = nodes as [GpumeshNode, GpumeshNode, GpumeshNode]
    const topic = '/gpumesh/test-judged/1'
    const atC: string[] = []
    for (const node of nodes) node.services.pubsub.subscribe(topic)
    c.services.pubsub.addEventListener('message', (evt) => { if (evt.detail.topic === topic) atC.push(new TextDecoder().decode(evt.detail.data)) })
    const judged: Array<string | null> = []
    const limited: string[] = []
    validateTopic(b, topic, (data, author) => {
      judged.push(author)
      return new TextDecoder().decode(data).startsWith('bad') ? 'reject' : 'accept'
    }, { perAuthor: { points: 5, durationMs: 60_000 }, onRateLimited: (author) => { limited.push(author) } })
    await vi.waitFor(() => { expect(a.services.pubsub.getSubscribers(topic).length === 1 && c.services.pubsub.getSubscribers(topic).length === 1).toBeTruthy() }, { timeout: 10_000 })
    for (let i = 0; i < 12; i++) await publish(a, topic, new TextEncoder().encode(i === 1 ? 'bad-1' : `ok-${i}`))
    // Until the relay has seen all twelve: five judged (the limit), the seven beyond it ignored unjudged.
    await vi.waitFor(() => { expect(judged.length + limited.length).toBe(12) }, { timeout: 10_000 })
    await vi.waitFor(() => { expect(atC.length).toBeGreaterThanOrEqual(4) }, { timeout: 10_000 })
    // The forged one of the five dropped; nothing but what the judge accepted reached C.
    expect(judged).toEqual(Array(5).fill(a.peerId.toString()))
    expect(limited).toEqual(Array(7).fill(a.peerId.toString()))
    expect(atC.sort()).toEqual(['ok-0', 'ok-2', 'ok-3', 'ok-4'])
  })

  it('publishes the same bytes twice as two signed messages', async () => {
    const [a] = nodes as [GpumeshNode]
    // signed messages carry a sequence number, so the same bytes twice are two messages
    await publish(a, TOPIC, new TextEncoder().encode('twice'))
    await expect(publish(a, TOPIC, new TextEncoder().encode('twice'))).resolves.toBeDefined()
  })
})
