import type { RequestTarget } from './request-response.js'

/**
 * Limits how many requests one node has in flight to one peer on one protocol. A server resets the
 * streams of a protocol beyond its inbound cap per connection (32 by default), and a burst of streams
 * on a connection still being set up can lose them all; so the client queues its own excess instead
 * of letting the remote reset it. Waiting counts against the request's own deadline.
 */
export class RequestGate {
  private readonly max: number
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor (max: number) {
    this.max = max
  }

  get idle (): boolean {
    return this.active === 0 && this.waiting.length === 0
  }

  async acquire (signal: AbortSignal): Promise<() => void> {
    if (this.active < this.max) {
      this.active++
      return this.releaser()
    }
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = (): void => {
        const index = this.waiting.indexOf(grant)
        if (index >= 0) this.waiting.splice(index, 1)
        reject(signal.reason)
      }
      if (signal.aborted) {
        reject(signal.reason)
        return
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(grant)
    })
    return this.releaser()
  }

  private releaser (): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.waiting.shift()
      if (next != null) {
        next() // the slot passes straight to the next waiter
      } else {
        this.active--
      }
    }
  }
}

const gates = new WeakMap<object, Map<string, RequestGate>>()

/** The gate of (node, remote peer, protocol); targets without a peer id share one per address set. */
export function gateFor (node: object, target: RequestTarget, protocol: string, max: number): { gate: RequestGate, forget: () => void } {
  let perNode = gates.get(node)
  if (perNode == null) {
    perNode = new Map()
    gates.set(node, perNode)
  }
  const key = `${targetKey(target)} ${protocol}`
  let gate = perNode.get(key)
  if (gate == null) {
    gate = new RequestGate(max)
    perNode.set(key, gate)
  }
  const found = gate
  const map = perNode
  // Gates are dropped once idle, so the map holds only peers with requests in flight.
  return { gate: found, forget: () => { if (found.idle) map.delete(key) } }
}

function targetKey (target: RequestTarget): string {
  const addresses = Array.isArray(target) ? target : [target]
  for (const address of addresses) {
    if ('getPeerId' in address && typeof address.getPeerId === 'function') {
      const peer = address.getPeerId()
      if (peer != null) return peer
    } else {
      return address.toString()
    }
  }
  return addresses.map((a) => a.toString()).sort().join(',')
}
