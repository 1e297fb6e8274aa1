import { HandlerError, RequestError, handle, request } from '@gpumesh/net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNodes, stopAll } from './nodes.js'
import type { GpumeshNode } from '@gpumesh/net'

const ECHO = '/gpumesh/test-echo/1.0.0'
const FAIL = '/gpumesh/test-fail/1.0.0'
const THROW = '/gpumesh/test-throw/1.0.0'
const SLOW = '/gpumesh/test-slow/1.0.0'
const LIMITED = '/gpumesh/test-limited/1.0.0'
const CAPPED = '/gpumesh/test-capped/1.0.0'
const SHORT = '/gpumesh/test-short/1.0.0'

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (data: Uint8Array): string => new TextDecoder().decode(data)

async function caught (promise: Promise<unknown>): Promise<RequestError> {
  try {
    await promise
  } catch (err) {
    expect(err).toBeInstanceOf(RequestError)
    return err as RequestError
  }
  throw new Error('expected the request to fail')
}

describe('request/response', () => {
  const nodes: GpumeshNode[] = []
  let server: GpumeshNode
  let client: GpumeshNode
  let other: GpumeshNode
  const release: Array<() => void> = []
  const capped: Array<() => void> = []
  let shortCalls = 0

  beforeAll(async () => {
    nodes.push(...await startNodes(3))
    ;[server, client, other] = nodes as [GpumeshNode, GpumeshNode, GpumeshNode]
    await handle(server, ECHO, async (req, ctx) => bytes(`${ctx.peerId.toString()}:${text(req)}`), { maxRequestBytes: 1024 })
    await handle(server, FAIL, async () => { throw new HandlerError('LEASE_NOT_FOUND', 'no such lease') })
    await handle(server, THROW, async () => { throw new Error('secret internal detail') })
    await handle(server, SLOW, async (_req, ctx) => new Promise<Uint8Array>((resolve) => {
      release.push(() => { resolve(bytes('late')) })
      ctx.signal.addEventListener('abort', () => { resolve(bytes('aborted')) })
    }), { timeoutMs: 5_000 })
    await handle(server, LIMITED, async () => bytes('ok'), { rateLimit: { points: 5, durationMs: 60_000 } })
    await handle(server, CAPPED, async (_req, ctx) => new Promise<Uint8Array>((resolve) => {
      capped.push(() => { resolve(bytes('done')) })
      ctx.signal.addEventListener('abort', () => { resolve(bytes('aborted')) })
    }), { maxInboundStreams: 2, timeoutMs: 5_000 })
    await handle(server, SHORT, async () => { shortCalls++; return bytes('ok') }, { timeoutMs: 200 })
  })

  afterAll(async () => {
    for (const fn of [...release, ...capped]) fn()
    await stopAll(nodes)
  })

  it('answers a request on a new stream, by multiaddr and then by peer id', async () => {
    const first = await request(client, server.getMultiaddrs(), ECHO, bytes('hello'))
    expect(text(first)).toBe(`${client.peerId.toString()}:hello`)
    const second = await request(client, server.peerId, ECHO, bytes('again'))
    expect(text(second)).toBe(`${client.peerId.toString()}:again`)
  })

  it('answers an oversized request with TOO_LARGE and keeps serving', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), ECHO, new Uint8Array(64 * 1024)))
    expect(err.code).toBe('REMOTE_ERROR')
    expect(err.remoteCode).toBe('TOO_LARGE')
    expect(text(await request(client, server.getMultiaddrs(), ECHO, bytes('still here')))).toContain('still here')
  })

  it('answers an oversized request of many megabytes without hanging', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), ECHO, new Uint8Array(8 * 1024 * 1024)))
    expect(err.remoteCode).toBe('TOO_LARGE')
    expect(text(await request(client, server.getMultiaddrs(), ECHO, bytes('ok')))).toContain('ok')
  })

  it('rejects a response over the client cap with TOO_LARGE', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), ECHO, bytes('x'.repeat(200)), { maxResponseBytes: 16 }))
    expect(err.code).toBe('TOO_LARGE')
  })

  it('carries a handler reason code back as REMOTE_ERROR', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), FAIL, bytes('x')))
    expect(err.code).toBe('REMOTE_ERROR')
    expect(err.remoteCode).toBe('LEASE_NOT_FOUND')
    expect(err.message).toContain('no such lease')
    expect(err.retryable).toBe(false)
  })

  it('answers a handler that throws with INTERNAL and hides its message', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), THROW, bytes('x')))
    expect(err.code).toBe('REMOTE_ERROR')
    expect(err.remoteCode).toBe('INTERNAL')
    expect(err.message).not.toContain('secret')
  })

  it('times out on a slow handler', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), SLOW, bytes('x'), { timeoutMs: 200 }))
    expect(err.code).toBe('TIMEOUT')
    expect(err.retryable).toBe(true)
  })

  it('aborts through the caller signal', async () => {
    const controller = new AbortController()
    const pending = caught(request(client, server.getMultiaddrs(), SLOW, bytes('x'), { signal: controller.signal }))
    setTimeout(() => { controller.abort() }, 50)
    expect((await pending).code).toBe('ABORTED')
  })

  it('aborts at once on an already aborted signal', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), ECHO, bytes('x'), { signal: AbortSignal.abort() }))
    expect(err.code).toBe('ABORTED')
  })

  it('fails to dial an address nobody listens on with DIAL_FAILED', async () => {
    const stopped = (await startNodes(1))[0] as GpumeshNode
    const addrs = stopped.getMultiaddrs()
    await stopped.stop()
    const err = await caught(request(client, addrs, ECHO, bytes('x'), { timeoutMs: 5_000 }))
    expect(err.code).toBe('DIAL_FAILED')
  })

  it('fails with PROTOCOL_ERROR when the remote does not speak the protocol', async () => {
    const err = await caught(request(client, server.getMultiaddrs(), '/gpumesh/nope/1.0.0', bytes('x')))
    expect(err.code).toBe('PROTOCOL_ERROR')
  })

  it('resets the stream of a peer that sends nothing within the timeout', async () => {
    const stream = await client.dialProtocol(server.getMultiaddrs(), SHORT)
    const closed = await new Promise<Event & { error?: Error }>((resolve) => {
      stream.addEventListener('close', (evt) => { resolve(evt) }, { once: true })
    })
    expect(closed.error?.name).toBe('StreamResetError')
    expect(stream.status).toBe('reset')
    expect(shortCalls).toBe(0)
    expect(text(await request(client, server.getMultiaddrs(), SHORT, bytes('x')))).toBe('ok')
  })

  it('resets the stream of a peer that sends half a frame and stops (a slow-loris), without calling the handler', async () => {
    const callsBefore = shortCalls
    const stream = await client.dialProtocol(server.getMultiaddrs(), SHORT)
    const closed = new Promise<Event & { error?: Error }>((resolve) => {
      stream.addEventListener('close', (evt) => { resolve(evt) }, { once: true })
    })
    // A length prefix announcing 100 bytes, then 10 of them, then nothing.
    stream.send(Uint8Array.from([100, ...new Array<number>(10).fill(7)]))
    const evt = await closed
    expect(evt.error?.name).toBe('StreamResetError')
    expect(shortCalls).toBe(callsBefore)
    expect(text(await request(client, server.getMultiaddrs(), SHORT, bytes('x')))).toBe('ok')
  })

  it('rate-limits a flooding peer while another peer is still served', async () => {
    const results = await Promise.allSettled(Array.from({ length: 12 }, async () =>
      request(client, server.getMultiaddrs(), LIMITED, bytes('x'))))
    const limited = results.filter((r) => r.status === 'rejected' && (r.reason as RequestError).remoteCode === 'RATE_LIMITED')
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5)
    expect(limited).toHaveLength(7)
    expect(text(await request(other, server.getMultiaddrs(), LIMITED, bytes('x')))).toBe('ok')
  })

  it('caps inbound streams per connection', async () => {
    const pending = Array.from({ length: 2 }, async () => request(client, server.getMultiaddrs(), CAPPED, bytes('x')))
    // a third concurrent stream is refused while two are open
    await expect.poll(() => capped.length, { timeout: 5_000 }).toBe(2)
    const err = await caught(request(client, server.getMultiaddrs(), CAPPED, bytes('x')))
    expect(err.code).toBe('STREAM_RESET')
    expect(capped).toHaveLength(2)
    for (const fn of capped.splice(0)) fn()
    expect((await Promise.all(pending)).map(text)).toEqual(['done', 'done'])
  })
})
