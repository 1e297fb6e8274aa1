import { createNode } from '@gpumesh/net'
import type { CreateNodeOptions, GpumeshNode } from '@gpumesh/net'

/** Starts `count` loopback nodes; `stopAll` stops them. */
export async function startNodes (count: number, options: CreateNodeOptions = {}): Promise<GpumeshNode[]> {
  return Promise.all(Array.from({ length: count }, async () => createNode({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    loopback: true,
    ...options
  })))
}

export async function stopAll (nodes: GpumeshNode[]): Promise<void> {
  await Promise.all(nodes.map(async (node) => { await node.stop() }))
  nodes.length = 0
}

/** Resolves once `check` holds, polling on the event loop; rejects after `timeoutMs`. */
export async function until (check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
