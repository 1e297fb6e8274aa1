import { randomBytes } from 'node:crypto'
import { JsonRpcProvider, NonceManager, Wallet } from 'ethers'
import { paymentKeyAddress, signVoucher } from '@gpumesh/protocol'
import type { Address, Bytes32, Eip712Domain, Voucher } from '@gpumesh/protocol'
import type { Ledger } from '@gpumesh/ledger'
import { EscrowClient, deployEscrow, deployTestToken, mintTestToken, startDevChain } from '../src/index.js'
import type { DevChain } from '../src/index.js'

export interface Chain {
  chain: DevChain
  escrow: Address
  token: Address
  /** Deployer (and token minter). */
  deployer: NonceManager
  domain: Eip712Domain
  rpc: JsonRpcProvider
  client: (key: string) => EscrowClient
  stop: () => Promise<void>
}

export const WITHDRAWAL_DELAY_SEC = 3600

/** A dev chain with a test token and an escrow deployed. */
export async function startChain (): Promise<Chain> {
  const chain = await startDevChain()
  const rpc = new JsonRpcProvider(chain.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 })
  rpc.pollingInterval = 100
  try {
    const deployer = new NonceManager(new Wallet(chain.keys[0] as string, rpc))
    const token = await deployTestToken(deployer)
    const escrow = await deployEscrow(deployer, { withdrawalDelaySec: WITHDRAWAL_DELAY_SEC })
    const clients: EscrowClient[] = []
    return {
      chain,
      escrow,
      token,
      deployer,
      rpc,
      domain: { chainId: chain.chainId, verifyingContract: escrow },
      client: (key) => {
        const client = new EscrowClient({ rpcUrl: chain.rpcUrl, escrow, privateKey: key, pollIntervalMs: 20 })
        clients.push(client)
        return client
      },
      stop: async () => {
        for (const client of clients) client.close()
        rpc.destroy()
        await chain.stop()
      }
    }
  } catch (err) {
    rpc.destroy()
    await chain.stop()
    throw err
  }
}

export const leaseId = (): Bytes32 => `0x${randomBytes(32).toString('hex')}` as Bytes32
export const addressOf = (key: string): Address => paymentKeyAddress(key)

/**
 * A running on-chain lease in `ledger` between `provider` and the renter of `renterKey`: one GPU at
 * `pricePerGpuHour`, billed every 60 s, on the chain's escrow. The GPU is `gpu`, one the ledger holds,
 * or else a simulated one of its own (its uuid the lease id, class SIM).
 */
export function runningLease (ledger: Ledger, c: Chain, terms: { renterKey: string, provider: Address, pricePerGpuHour: bigint, gpu?: { uuid: string, class: string } }): Bytes32 {
  const id = leaseId()
  const gpu = terms.gpu ?? { uuid: id, class: 'SIM' }
  if (terms.gpu === undefined) ledger.upsertGpus([{ uuid: id, index: 0, vendor: 'simulated', name: 'sim', class: 'SIM', memoryMiB: 1, simulated: true, state: 'free', problems: [] }])
  ledger.reserveLease({
    leaseId: id, orderId: leaseId(), orderExpiresAt: Date.now() + 3_600_000, renter: addressOf(terms.renterKey), renterPeerId: 'renter',
    matcherPeerId: null, provider: terms.provider, token: c.token, chainId: c.chain.chainId, pricePerGpuHour: terms.pricePerGpuHour,
    gpuClass: gpu.class, gpuCount: 1, durationSec: 3600, billingIntervalSec: 60, paymentGraceSec: 30, startDeadline: Date.now() + 60_000,
    jobHash: leaseId(), eligibleGpuUuids: [gpu.uuid], escrow: c.escrow
  })
  ledger.transitionLease(id, 'running', 'JOB_STARTED')
  return id
}

export function voucher (fields: {
  leaseId: Bytes32
  provider: Address
  renterKey: string
  token: Address
  cumulativeAmount: bigint
  sequence?: bigint
  domain: Eip712Domain
  /** Sign for this domain instead (the voucher still claims `domain`). */
  signDomain?: Eip712Domain
}): Voucher {
  const value = {
    leaseId: fields.leaseId,
    provider: fields.provider,
    renter: addressOf(fields.renterKey),
    token: fields.token,
    cumulativeAmount: fields.cumulativeAmount,
    sequence: fields.sequence ?? 1n
  }
  return {
    type: 'voucher',
    ...value,
    chainId: fields.domain.chainId,
    verifyingContract: fields.domain.verifyingContract,
    signature: signVoucher(value, fields.renterKey, fields.signDomain ?? fields.domain)
  }
}

export async function fund (c: Chain, renterKey: string, amount: bigint, deposit = amount): Promise<void> {
  await mintTestToken(c.deployer, c.token, addressOf(renterKey), amount)
  if (deposit > 0n) await c.client(renterKey).deposit(c.token, deposit)
}

export async function increaseTime (c: Chain, seconds: number): Promise<void> {
  await c.rpc.send('evm_increaseTime', [seconds])
  await c.rpc.send('evm_mine', [])
}
