import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet } from 'ethers'
import { generatePeerKey, peerKeyFromBytes, peerKeyToBytes } from '@gpumesh/net'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { CliError } from './errors.js'
import { useNativeScrypt } from './native-scrypt.js'

/** File names inside the data directory. */
export const PEER_KEY_FILE = 'peer.key'
export const KEYSTORE_FILE = 'payment-key.json'
export const CONFIG_FILE = 'config.yaml'

/** A node's two keys: the libp2p peer key (transport, gossip) and the payment key (signatures, payouts). */
export interface Identity {
  peerKey: Ed25519PrivateKey
  peerId: string
  wallet: Wallet
  address: string
}

export interface CreateIdentityOptions {
  password: string
  force?: boolean
}

export interface CreatedIdentity {
  peerId: string
  address: string
  peerKeyPath: string
  keystorePath: string
}

/**
 * Creates the data directory (mode 0700), a peer key and an encrypted payment keystore (both 0600).
 * Refuses to replace an existing identity unless `force`: a lost payment key is lost money.
 */
export async function createIdentity (dataDir: string, options: CreateIdentityOptions): Promise<CreatedIdentity> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const peerKeyPath = join(dataDir, PEER_KEY_FILE)
  const keystorePath = join(dataDir, KEYSTORE_FILE)
  if (options.force !== true) {
    for (const path of [peerKeyPath, keystorePath]) {
      if (await exists(path)) {
        throw new CliError('IDENTITY_EXISTS', `An identity already exists in ${dataDir} (${path}). Keep it, or pass --force to replace it: the old keys are then gone for good.`)
      }
    }
  }
  const peerKey = await generatePeerKey()
  const wallet = Wallet.createRandom()
  useNativeScrypt()
  const keystore = await wallet.encrypt(options.password)
  await writeSecret(peerKeyPath, peerKeyToBytes(peerKey))
  await writeSecret(keystorePath, keystore)
  return { peerId: peerIdFromPrivateKey(peerKey).toString(), address: wallet.address, peerKeyPath, keystorePath }
}

/** Loads both keys; a wrong password or a missing file is a sentence saying what to do. */
export async function loadIdentity (dataDir: string, password: string): Promise<Identity> {
  const peerKeyPath = join(dataDir, PEER_KEY_FILE)
  const keystorePath = join(dataDir, KEYSTORE_FILE)
  let peerKeyBytes: Uint8Array
  let keystore: string
  try {
    peerKeyBytes = await readFile(peerKeyPath)
    keystore = await readFile(keystorePath, 'utf8')
  } catch (err) {
    throw new CliError('NO_IDENTITY', `No identity in ${dataDir}. Run "gpumesh init --data-dir ${dataDir}" first.`, { cause: err })
  }
  const peerKey = peerKeyFromBytes(peerKeyBytes)
  let wallet: Wallet
  try {
    useNativeScrypt()
    const decrypted = await Wallet.fromEncryptedJson(keystore, password)
    wallet = decrypted instanceof Wallet ? decrypted : new Wallet(decrypted.privateKey)
  } catch (err) {
    throw new CliError('BAD_PASSWORD', `Could not unlock the payment key in ${keystorePath}: the password is wrong or the file is damaged. Give the password used with "gpumesh init" (GPUMESH_PASSWORD_FILE, GPUMESH_PASSWORD or the prompt).`, { cause: err })
  }
  return { peerKey, peerId: peerIdFromPrivateKey(peerKey).toString(), wallet, address: wallet.address }
}

export async function writeSecret (path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path, data, { mode: 0o600 })
  await chmod(path, 0o600)
}

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}
