import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { PeerKeyError } from './errors.js'
import type { Ed25519PrivateKey } from '@libp2p/interface'

/** A fresh Ed25519 peer key; its public half is the node's peer id. */
export async function generatePeerKey (): Promise<Ed25519PrivateKey> {
  return generateKeyPair('Ed25519')
}

/** The libp2p protobuf encoding of a peer key, for a daemon to store (mode 0600: it is a secret). */
export function peerKeyToBytes (key: Ed25519PrivateKey): Uint8Array {
  return privateKeyToProtobuf(key)
}

/** Reads a peer key stored by `peerKeyToBytes`; throws `PeerKeyError` unless it is an Ed25519 key. */
export function peerKeyFromBytes (bytes: Uint8Array): Ed25519PrivateKey {
  let key
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new PeerKeyError('stored peer key could not be decoded', { cause: err })
  }
  if (key.type !== 'Ed25519') {
    throw new PeerKeyError(`peer key must be Ed25519, got ${key.type}`)
  }
  return key
}
