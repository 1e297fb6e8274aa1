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

/**
 * Records what `node`'s judge of `topic` (set with validateTopic) answers, by the peer that passed each
 * message on, until `restore()`. A message is relayed only after its judge accepted it, so once a
 * rejection is recorded the message can no longer cross this node.
 */
export function recordJudgements (node: GpumeshNode, topic: string): { results: (from: string) => string[], restore: () => void } {
  const validators = node.services.pubsub.topicValidators
  const judge = validators.get(topic)
  if (judge == null) throw new Error(`the node does not judge ${topic}`)
  const seen: Array<{ from: string, result: string }> = []
  validators.set(topic, async (peer, message) => {
    const result = await judge(peer, message)
    seen.push({ from: peer.toString(), result })
    return result
  })
  return {
    results: (from) => seen.filter((s) => s.from === from).map((s) => s.result),
    restore: () => { validators.set(topic, judge) }
  }
}
