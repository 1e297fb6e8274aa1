import { FrameStreamError, handleFrameStreams, openFrameStream } from '@gpumesh/net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNodes, stopAll } from './nodes.js'
import type { FrameStream, GpumeshNode } from '@gpumesh/net'

const ECHO = '/gpumesh/test-frame-echo/1.0.0'
const SINK = '/gpumesh/test-frame-sink/1.0.0'
const SOURCE = '/gpumesh/test-frame-source/1.0.0'

describe('frame streams', () => {
  const nodes: GpumeshNode[] = []
  let server: GpumeshNode
  let client: GpumeshNode
  const sinkStreams: FrameStream[] = []
  let sourceSent = 0

  beforeAll(async () => {
    nodes.push(...await startNodes(2))
    ;[server, client] = nodes as [GpumeshNode, GpumeshNode]
    await handleFrameStreams(server, ECHO, async (stream) => {
      for await (const frame of stream) await stream.send(frame)
    }, { maxFrameBytes: 1024 })
    // reads nothing until the test says so: the sender must feel back-pressure
    await handleFrameStreams(server, SINK, async (stream) => {
      sinkStreams.push(stream)
      await new Promise<void>((resolve) => { stream.stream.addEventListener('close', () => { resolve() }) })
    }, { highWaterMark: 2, maxFrameBytes: 64 * 1024 })
    await handleFrameStreams(server, SOURCE, async (stream, ctx) => {
      for (let i = 0; i < 1000 && !ctx.signal.aborted; i++) {
        await stream.send(new Uint8Array(64 * 1024))
        sourceSent++
      }
    })
  })

  afterAll(async () => { await stopAll(nodes) })

  it('round-trips many frames on one open stream and ends cleanly', async () => {
    const stream = await openFrameStream(client, server.getMultiaddrs(), ECHO)
    expect(stream.remotePeer.equals(server.peerId)).toBe(true)
    for (let i = 0; i < 50; i++) {
      await stream.send(Uint8Array.of(i, i + 1))
      expect(Array.from(await stream.read() ?? [])).toEqual([i, i + 1])
    }
    await stream.close()
    expect(await stream.read()).toBeNull()
  })

  it('carries empty frames', async () => {
    const stream = await openFrameStream(client, server.getMultiaddrs(), ECHO)
    await stream.send(new Uint8Array(0))
    expect(await stream.read()).toEqual(new Uint8Array(0))
    await stream.close()
  })

  it('resets the stream on a frame over the cap', async () => {
    const stream = await openFrameStream(client, server.getMultiaddrs(), ECHO)
    await stream.send(new Uint8Array(2048))
    const err = await stream.read().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FrameStreamError)
    expect((err as FrameStreamError).code).toBe('STREAM_RESET')
  })

  it('blocks a sender whose reader does not read (back-pressure)', async () => {
    const stream = await openFrameStream(client, server.getMultiaddrs(), SINK, { idleTimeoutMs: 300 })
    const frame = new Uint8Array(64 * 1024)
    let sent = 0
    const err = await (async () => {
      for (let i = 0; i < 2000; i++) {
        await stream.send(frame)
        sent++
      }
    })().catch((e: unknown) => e)
    expect((err as FrameStreamError).code).toBe('TIMEOUT')
    // yamux windows plus the reader's high-water mark: far less than the 125 MiB offered
    expect(sent).toBeLessThan(800)
    stream.abort()
  })

  it('pauses a fast source while the consumer is slow, then drains it', async () => {
    const stream = await openFrameStream(client, server.getMultiaddrs(), SOURCE, { highWaterMark: 2 })
    await stream.send(Uint8Array.of(1))
    expect(await stream.read()).not.toBeNull()
    // the consumer stalls: the source must stop well short of its 1000 frames. The stall is what is
    // tested (time in which a source without back-pressure would send them all, over real yamux
    // streams on real timers), so this sleep stays.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(sourceSent).toBeLessThan(600)
    let count = 1
    for await (const _frame of stream) count++
    expect(count).toBe(1000)
  })

  it('fails to open on an unknown protocol with DIAL_FAILED', async () => {
    const err = await openFrameStream(client, server.getMultiaddrs(), '/gpumesh/nope/1').catch((e: unknown) => e)
    expect((err as FrameStreamError).code).toBe('DIAL_FAILED')
  })

  it('times out a read when nothing arrives', async () => {
    const stream = await openFrameStream(client, server.getMultiaddrs(), ECHO, { idleTimeoutMs: 150 })
    const err = await stream.read().catch((e: unknown) => e)
    expect((err as FrameStreamError).code).toBe('TIMEOUT')
    stream.abort()
  })
})
