import { noise } from '@chainsafe/libp2p-noise'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { logger } from '@libp2p/logger'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import {
  DEFAULT_BOOTSTRAP_REDIAL_MS,
  DEFAULT_GOSSIP_MAX_MESSAGE_BYTES,
  DEFAULT_LISTEN_ADDRESSES,
  DHT_PROTOCOL,
  GOSSIP_ENVELOPE_OVERHEAD_BYTES,
  LOOPBACK_ALLOW_LIST
} from './constants.js'
import { setGossipMaxMessageBytes } from './gossip.js'
import { ListenError, listenReason } from './errors.js'
import { generatePeerKey } from './keys.js'
import { RepeatingTask } from './repeating-task.js'
import type { GossipSub, GossipsubOpts } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, PeerDiscovery, PeerId, PeerInfo, PrivateKey } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Libp2pOptions } from 'libp2p'

const log = logger('gpumesh:net')

export interface GpumeshServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  /** Present only when the node was built with `dht`. */
  dht?: KadDHT
}

/** A started (unless `start: false`) libp2p node with the gpumesh services. */
export type GpumeshNode = Libp2p<GpumeshServices>

export interface GossipOptions {
  /** Largest payload `publish()` accepts; receivers are configured to take it plus envelope room. */
  maxMessageBytes?: number
  /**
   * Score weight of many peers behind one IP. Gossipsub's default (-53) prunes meshes of more than 10
   * peers on one address, so tests and single-host fleets set 0 (the `loopback` switch does).
   */
  ipColocationFactorWeight?: number
  /** Do not throw when nobody subscribes to the topic yet (default true: offers go out regardless). */
  allowPublishToZeroTopicPeers?: boolean
  /** Deliver our own messages to our own subscription (default false). */
  emitSelf?: boolean
  /** Raw gossipsub options, applied last. */
  overrides?: Partial<GossipsubOpts>
}

export interface ConnectionMonitorOptions {
  /** Ping every connection and drop dead ones (default true). */
  enabled?: boolean
  /** Default 10 s. */
  pingIntervalMs?: number
  /** Lower bound of the adaptive ping timeout; busy peers answer late, so default 10 s. */
  minTimeoutMs?: number
  /** Default 60 s. */
  maxTimeoutMs?: number
  /** Drop a connection whose ping failed (default true). */
  abortOnFailure?: boolean
}

export interface DhtOptions {
  /** Default '/gpumesh/kad/1.0.0': a private DHT, never the public IPFS one. */
  protocol?: string
  /** Default false: answer queries (server mode) so a small private network works at all. */
  clientMode?: boolean
}

export interface MdnsOptions {
  /** Query interval, default 10 s. */
  intervalMs?: number
  /** Service tag; nodes only see others with the same tag. Default 'gpumesh.local'. */
  serviceTag?: string
}

export interface CreateNodeOptions {
  /** Default ['/ip4/0.0.0.0/tcp/0']. Read the real ports back with `node.getMultiaddrs()`. */
  listen?: string[]
  /** Addresses to announce instead of the listen addresses (NAT, public IP). */
  announce?: string[]
  /** The node's identity; a fresh Ed25519 key when absent (see `generatePeerKey`). */
  privateKey?: PrivateKey
  /** Multiaddrs with /p2p/<peer id> to dial at start and keep connected. */
  bootstrap?: string[]
  /**
   * How often a bootstrap peer that is not connected is dialled again (it restarted, the network
   * dropped): libp2p dials them once at start and never again. Default 10 s; 0 turns it off.
   */
  bootstrapRedialMs?: number
  /** Find peers on the LAN and dial them (mDNS only reports peers). Default off. */
  mdns?: boolean | MdnsOptions
  /** Private Kademlia DHT for peer routing. Default off. */
  dht?: boolean | DhtOptions
  gossip?: GossipOptions
  connectionMonitor?: ConnectionMonitorOptions
  /**
   * Single-host tuning for tests, benches and devnets: gossip IP-colocation penalty off, connection
   * monitor off, private addresses kept. Explicit options still win.
   */
  loopback?: boolean
  /** CIDR multiaddrs exempt from the inbound rate limit and connection cap; loopback is always added. */
  allow?: string[]
  /** New inbound connections per second per host before refusal (libp2p default 5). */
  inboundConnectionThreshold?: number
  /** Default 300. */
  maxConnections?: number
  /** Start the node before returning (default true). */
  start?: boolean
}

/**
 * Builds a gpumesh libp2p node: TCP, noise, yamux, identify, ping, gossipsub, and optionally bootstrap,
 * mDNS (with dial-on-discovery) and a private DHT. Loopback addresses are allow-listed so that many
 * local peers are not refused by libp2p's 5-connections-per-second-per-host limit.
 */
export async function createNode (options: CreateNodeOptions = {}): Promise<GpumeshNode> {
  const loopback = options.loopback === true
  const gossip = options.gossip ?? {}
  const maxMessageBytes = gossip.maxMessageBytes ?? DEFAULT_GOSSIP_MAX_MESSAGE_BYTES
  const monitor = options.connectionMonitor ?? {}

  const peerDiscovery: Array<(components: never) => PeerDiscovery> = []
  if (options.bootstrap != null && options.bootstrap.length > 0) {
    peerDiscovery.push(bootstrap({ list: options.bootstrap }))
  }
  const mdnsOptions = options.mdns === true ? {} : options.mdns === false ? undefined : options.mdns
  if (mdnsOptions != null) {
    peerDiscovery.push(mdns({
      interval: mdnsOptions.intervalMs ?? 10_000,
      serviceTag: mdnsOptions.serviceTag ?? 'gpumesh.local'
    }))
  }

  const services: Record<string, unknown> = {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      allowPublishToZeroTopicPeers: gossip.allowPublishToZeroTopicPeers ?? true,
      emitSelf: gossip.emitSelf ?? false,
      maxInboundDataLength: maxMessageBytes + GOSSIP_ENVELOPE_OVERHEAD_BYTES,
      scoreParams: {
        IPColocationFactorWeight: gossip.ipColocationFactorWeight ?? (loopback ? 0 : -53)
      },
      ...gossip.overrides
    })
  }
  const dhtOptions = options.dht === true ? {} : options.dht === false ? undefined : options.dht
  if (dhtOptions != null) {
    services.dht = kadDHT({
      protocol: dhtOptions.protocol ?? DHT_PROTOCOL,
      clientMode: dhtOptions.clientMode ?? false,
      // the default mapper strips private and loopback addresses, which empties a LAN or local DHT
      peerInfoMapper: passthroughMapper,
      allowQueryWithZeroPeers: true
    })
  }

  const init: Libp2pOptions<GpumeshServices> = {
    start: false,
    addresses: {
      listen: options.listen ?? [...DEFAULT_LISTEN_ADDRESSES],
      ...(options.announce != null ? { announce: options.announce } : {})
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: peerDiscovery as Libp2pOptions['peerDiscovery'],
    services: services as Libp2pOptions<GpumeshServices>['services'],
    connectionManager: {
      allow: [...LOOPBACK_ALLOW_LIST, ...(options.allow ?? [])],
      maxConnections: options.maxConnections ?? 300,
      ...(options.inboundConnectionThreshold != null ? { inboundConnectionThreshold: options.inboundConnectionThreshold } : {})
    },
    connectionMonitor: {
      enabled: monitor.enabled ?? !loopback,
      pingInterval: monitor.pingIntervalMs ?? 10_000,
      pingTimeout: { minTimeout: monitor.minTimeoutMs ?? 10_000, maxTimeout: monitor.maxTimeoutMs ?? 60_000 },
      abortConnectionOnPingFailure: monitor.abortOnFailure ?? true
    }
  }
  if (options.privateKey != null) {
    init.privateKey = options.privateKey
  } else {
    init.privateKey = await generatePeerKey()
  }

  const node = await createLibp2p(init)
  setGossipMaxMessageBytes(node, maxMessageBytes)
  if (mdnsOptions != null) dialOnDiscovery(node)
  if (options.bootstrap != null && options.bootstrap.length > 0 && (options.bootstrapRedialMs ?? DEFAULT_BOOTSTRAP_REDIAL_MS) > 0) {
    keepBootstrapConnected(node, options.bootstrap, options.bootstrapRedialMs ?? DEFAULT_BOOTSTRAP_REDIAL_MS)
  }
  if (options.start !== false) {
    try {
      await node.start()
    } catch (err) {
      await node.stop()
      throw asListenError(err) ?? err
    }
    log('started %p on %a', node.peerId, node.getMultiaddrs())
  }
  return node
}

/**
 * Dials every bootstrap peer that is not connected, every `intervalMs` while the node runs, one dial
 * per peer at a time. A provider whose matcher restarted (or the other way round) finds it again.
 */
function keepBootstrapConnected (node: GpumeshNode, list: string[], intervalMs: number): void {
  const peers = new Map<string, { id: PeerId, addr: Multiaddr, dialling: boolean }>()
  for (const text of list) {
    try {
      const addr = multiaddr(text)
      const id = addr.getComponents().findLast((c) => c.name === 'p2p')?.value
      if (id != null && !peers.has(id)) peers.set(id, { id: peerIdFromString(id), addr, dialling: false })
    } catch (err) {
      log('bootstrap address %s is not a multiaddr - %e', text, err)
    }
  }
  const check = (): void => {
    if (node.status !== 'started') return
    for (const peer of peers.values()) {
      if (peer.dialling || node.getConnections(peer.id).length > 0) continue
      peer.dialling = true
      node.dial(peer.addr)
        .catch((err: unknown) => { log('redial of bootstrap peer %p failed - %e', peer.id, err) })
        .finally(() => { peer.dialling = false })
    }
  }
  const task = new RepeatingTask({ intervalMs, onError: (err) => { log('bootstrap redial failed - %e', err) } }, check)
  node.addEventListener('start', () => { task.start() })
  node.addEventListener('stop', () => { void task.stop() })
}

/** mDNS only reports peers; connect to each one we are not yet connected to. */
function dialOnDiscovery (node: GpumeshNode): void {
  node.addEventListener('peer:discovery', (evt: CustomEvent<PeerInfo>) => {
    const peer = evt.detail
    if (peer.id.equals(node.peerId) || node.getConnections(peer.id).length > 0 || node.status !== 'started') return
    node.dial(peer.id).catch((err: unknown) => {
      log('dial of discovered peer %p failed - %e', peer.id, err)
    })
  })
}

/**
 * libp2p's UnsupportedListenAddressesError lists each failed address on a line of its message
 * ("  /ip4/…/tcp/4001: Error: listen EADDRINUSE: …"); turns it into a ListenError in plain words.
 */
function asListenError (err: unknown): ListenError | null {
  if ((err as Error)?.name !== 'UnsupportedListenAddressesError') return null
  const failures: Array<{ address: string, reason: string }> = []
  for (const m of ((err as Error).message ?? '').matchAll(/^\s+(\/\S+): (?:\w*Error: )?(.*)$/gm)) {
    const said = m[2] ?? ''
    const code = /\b(E[A-Z]+)\b/.exec(said)?.[1]
    failures.push({ address: m[1] ?? '', reason: listenReason(code, said) })
  }
  return new ListenError(failures, { cause: err })
}
