import { RequestError, handle, request } from '@gpumesh/net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { startNodes, stopAll } from './nodes.js'
import type { GpumeshNode } from '@gpumesh/net'

const PROTOCOL = '/gpumesh/test-gate/1.0.0'

describe('client-side request gate', () => {
  const nodes: GpumeshNode[] = []
  afterEach(async () => { await stopAll(nodes) })

  /** A server whose handler holds each request until `open()` and records the most held at once. */
  async function server (node: GpumeshNode): Promise<{ peak: () => number, open: () => void }> {
    let held = 0
    let peak = 0
    let gate: Promise<void> | null = null
    let openGate = (): void => {}
    gate = new Promise<void>((resolve) => { openGate = resolve })
    await handle(node, PROTOCOL, async (req) => {
      held++
      peak = Math.max(peak, held)
      await new Promise((resolve) => setTimeout(resolve, 5)) // a little work, so that requests overlap (not a wait)
      await gate
      held--
      return req
    }, { maxInboundStreams: 32, rateLimit: { points: 1_000, durationMs: 60_000 } })
    return { peak: () => peak, open: () => { openGate(); gate = null } }
  }

  it('lets a burst of 50 requests to a peer not yet connected all succeed, at most 8 in flight', async () => {
    nodes.push(...await startNodes(2))
    const [a, b] = nodes as [GpumeshNode, GpumeshNode]
    const s = await server(b)
    const burst = Promise.all(Array.from({ length: 50 }, async (_, i) => request(a, b.getMultiaddrs(), PROTOCOL, new Uint8Array([i]))))
    // Open once the gate has let as many in as it allows (all held at the server), not after a guess.
    await vi.waitFor(() => { expect(s.peak()).toBe(8) }, { timeout: 10_000 })
    s.open()
    const answers = await burst
    expect(answers.map((r) => r[0])).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(s.peak()).toBeLessThanOrEqual(8)
    expect(s.peak()).toBeGreaterThan(1)
  })

  it('honours a smaller limit and times out a request still waiting for its turn', async () => {
    nodes.push(...await startNodes(2))
    const [a, b] = nodes as [GpumeshNode, GpumeshNode]
    const s = await server(b)
    const held = Array.from({ length: 2 }, async (_, i) => request(a, b.getMultiaddrs(), PROTOCOL, new Uint8Array([i]), { maxConcurrent: 2, timeoutMs: 10_000 }))
    const waiting = request(a, b.getMultiaddrs(), PROTOCOL, new Uint8Array([9]), { maxConcurrent: 2, timeoutMs: 300 })
    const err = await waiting.then(() => null, (e: unknown) => e)
    expect(err).toBeInstanceOf(RequestError)
    expect((err as RequestError).code).toBe('TIMEOUT')
    s.open()
    expect((await Promise.all(held)).map((r) => r[0])).toEqual([0, 1])
    expect(s.peak()).toBe(2)
  })
})
