/**
 * The escrow over JSON-RPC (ethers v6): deposits and withdrawals for renters, payout addresses and
 * batched redemption for providers, and the views both need.
 *
 * Transactions from one key are serialized through one queue per (node, address) in this process, and
 * each takes its nonce from the node (`pending`) when its turn comes, so concurrent calls never race
 * for a nonce. A redemption is signed before it is broadcast, so its hash is known (and can be
 * recorded) before the chain can see it; a broadcast that fails is retried with the same signed
 * transaction. Every ethers or RPC failure leaves this module as a {@link ChainError}.
 */
import { AbiCoder, Contract, ContractFactory, Interface, JsonRpcProvider, Network, Wallet, getAddress, isAddress, keccak256 } from 'ethers'
import type { Log, Signer, TransactionReceipt, TransactionRequest } from 'ethers'
import type { Address, Bytes32, Hex, Voucher } from '@gpumesh/protocol'
import { loadContracts } from './artifacts.js'
import { DEFAULT_RECEIPT_TIMEOUT_MS, DEFAULT_RPC_TIMEOUT_MS, REDEEM_CODES } from './constants.js'
import type { RedeemCode } from './constants.js'
import { ChainError } from './errors.js'
import { toChainError } from './chain-errors.js'
import type { SettlementLogger } from './types.js'
import { SILENT_LOGGER } from './types.js'

export interface EscrowClientOptions {
  rpcUrl: string
  escrow: Address
  /** The key that sends transactions; without it the client only reads. */
  privateKey?: string
  logger?: SettlementLogger
  /** Per JSON-RPC call. Default 30 s. */
  rpcTimeoutMs?: number
  /** How long to wait for a receipt. Default 120 s. */
  receiptTimeoutMs?: number
  /** How often to ask for a receipt. Default 200 ms. */
  pollIntervalMs?: number
}

export interface EscrowAccount {
  /** Everything in the account, a pending withdrawal included. */
  balance: bigint
  pendingWithdrawal: bigint
  /** When the pending withdrawal may be withdrawn, ms since the epoch; 0 when none is announced. */
  unlockAt: number
  /** What providers can still count on: the balance less the pending withdrawal. */
  available: bigint
}

export interface VoucherIdentity { leaseId: Bytes32, provider: Address, renter: Address, token: Address }

export interface RedeemEntryResult {
  leaseId: Bytes32
  voucherKey: Hex
  /** Paid by this redemption. */
  paid: bigint
  /** What the lease has been paid in all after it (known for paid entries; null otherwise). */
  paidTotal: bigint | null
  code: RedeemCode
}

export interface RedeemResult {
  txHash: Hex
  blockNumber: number
  gasUsed: bigint
  /** True when the transaction reverted (then every entry is reported unpaid). */
  reverted: boolean
  /** In the order of the vouchers given. */
  entries: RedeemEntryResult[]
}

export interface TxResult { txHash: Hex, blockNumber: number, gasUsed: bigint }

export interface RedeemOptions {
  signal?: AbortSignal
  /**
   * Called with the transaction hash after it is signed and before it is broadcast: what is recorded
   * here survives a crash that happens while the transaction is on its way.
   */
  onSigned?: (txHash: Hex) => Promise<void> | void
  /** Called once the node accepted the transaction, before waiting for its receipt. */
  onBroadcast?: (txHash: Hex) => Promise<void> | void
}

/** keccak256(abi.encode(leaseId, provider, renter, token)): a lease's identity in the escrow. */
export function voucherKey (v: VoucherIdentity): Hex {
  return keccak256(AbiCoder.defaultAbiCoder().encode(['bytes32', 'address', 'address', 'address'], [v.leaseId, v.provider, v.renter, v.token])) as Hex
}

const TWO_255 = 1n << 255n

/** EIP-2098 compact form of a 65-byte (r, s, v) signature; null when it has none (s ≥ 2^255, bad v). */
export function compactSignature (signature: string): { r: Hex, vs: Hex } | null {
  if (!/^0x[0-9a-fA-F]{130}$/.test(signature)) return null
  const r = `0x${signature.slice(2, 66)}` as Hex
  const s = BigInt(`0x${signature.slice(66, 130)}`)
  const v = Number.parseInt(signature.slice(130, 132), 16)
  if ((v !== 27 && v !== 28) || s >= TWO_255) return null
  const vs = v === 28 ? s | TWO_255 : s
  return { r, vs: `0x${vs.toString(16).padStart(64, '0')}` as Hex }
}

interface GroupEntry { leaseId: string, renter: string, cumulativeAmount: bigint, sequence: bigint, r: string, vs: string }
interface Group { provider: string, token: string, entries: GroupEntry[] }

/** The `redeem` argument for vouchers: grouped by (provider, token), with where each voucher went. */
export function encodeRedeemGroups (vouchers: readonly Voucher[]): { groups: Group[], order: Array<number | null> } {
  const groups: Group[] = []
  const byKey = new Map<string, Group>()
  const placed: Array<{ group: Group, index: number } | null> = []
  for (const v of vouchers) {
    const signature = compactSignature(v.signature.signature)
    if (signature === null) { placed.push(null); continue }
    const key = `${v.provider.toLowerCase()}:${v.token.toLowerCase()}`
    let group = byKey.get(key)
    if (group === undefined) {
      group = { provider: v.provider, token: v.token, entries: [] }
      byKey.set(key, group)
      groups.push(group)
    }
    group.entries.push({ leaseId: v.leaseId, renter: v.renter, cumulativeAmount: v.cumulativeAmount, sequence: v.sequence, ...signature })
    placed.push({ group, index: group.entries.length - 1 })
  }
  // Position of each voucher in the flattened (group-ordered) entry list the contract walks.
  const offsets = new Map<Group, number>()
  let offset = 0
  for (const group of groups) { offsets.set(group, offset); offset += group.entries.length }
  const order = placed.map((p) => p === null ? null : (offsets.get(p.group) as number) + p.index)
  return { groups, order }
}

const queues = new Map<string, Promise<unknown>>()

/** Runs `fn` after every earlier call with the same key has finished. */
async function serialized<T> (key: string, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve()
  const run = previous.catch(() => undefined).then(fn)
  const tail = run.catch(() => undefined)
  queues.set(key, tail)
  void tail.then(() => { if (queues.get(key) === tail) queues.delete(key) })
  return await run
}

export class EscrowClient {
  readonly escrow: Address
  readonly rpcUrl: string
  /** The key, not connected; connected to the provider once the chain id is known. */
  readonly #key: Wallet | null
  #connection: Promise<{ provider: JsonRpcProvider, wallet: Wallet | null }> | null = null
  #provider: JsonRpcProvider | null = null
  readonly #logger: SettlementLogger
  readonly #rpcTimeoutMs: number
  readonly #receiptTimeoutMs: number
  readonly #pollIntervalMs: number
  #contract: Promise<{ contract: Contract, iface: Interface }> | null = null
  #chainId: bigint | null = null
  readonly #tokenIface = new Interface([
    'function approve(address spender, uint256 amount) returns (bool)',
    'function allowance(address owner, address spender) view returns (uint256)',
    'function balanceOf(address holder) view returns (uint256)',
    'function decimals() view returns (uint8)',
    'function transfer(address to, uint256 amount) returns (bool)',
    'function mint(address to, uint256 amount)',
    'function symbol() view returns (string)',
    'function decimals() view returns (uint8)'
  ])

  constructor (options: EscrowClientOptions) {
    if (!isAddress(options.escrow)) throw new ChainError(`The escrow address ${String(options.escrow)} is not an address.`, 'BAD_INPUT', false)
    this.escrow = getAddress(options.escrow) as Address
    this.rpcUrl = options.rpcUrl
    this.#logger = options.logger ?? SILENT_LOGGER
    this.#rpcTimeoutMs = options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS
    this.#receiptTimeoutMs = options.receiptTimeoutMs ?? DEFAULT_RECEIPT_TIMEOUT_MS
    this.#pollIntervalMs = options.pollIntervalMs ?? 200
    try {
      this.#key = options.privateKey === undefined ? null : new Wallet(options.privateKey)
    } catch (err) {
      throw new ChainError('The payment key is not a valid secp256k1 private key.', 'BAD_INPUT', false, { cause: err })
    }
  }

  /** The address that sends transactions, or null for a read-only client. */
  get address (): Address | null {
    return this.#key === null ? null : this.#key.address as Address
  }

  /** Closes the JSON-RPC connection. */
  close (): void {
    this.#provider?.destroy()
    this.#provider = null
    this.#connection = null
  }

  /** The node's chain id (asked once, with a plain JSON-RPC call). */
  async chainId (): Promise<bigint> {
    this.#chainId ??= await this.#rpc('eth_chainId', async () => {
      const response = await fetch(this.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(this.#rpcTimeoutMs)
      })
      const body = await response.json().catch(() => null) as { result?: unknown } | null
      if (typeof body?.result !== 'string' || !/^0x[0-9a-fA-F]{1,64}$/.test(body.result)) {
        throw new ChainError(`The node at ${this.rpcUrl} did not answer eth_chainId with a chain id; check the RPC URL.`, 'NETWORK', true)
      }
      return BigInt(body.result)
    })
    return this.#chainId
  }

  /**
   * The ethers provider, made once the chain id is known and pinned to it: ethers then never probes
   * the network on its own (and never retries or logs in the background when the node is down).
   */
  async #connect (): Promise<{ provider: JsonRpcProvider, wallet: Wallet | null }> {
    this.#connection ??= (async () => {
      const network = Network.from(await this.chainId())
      const provider = new JsonRpcProvider(this.rpcUrl, network, { staticNetwork: network, batchMaxCount: 1, cacheTimeout: -1 })
      this.#provider = provider
      return { provider, wallet: this.#key === null ? null : this.#key.connect(provider) }
    })()
    try {
      return await this.#connection
    } catch (err) {
      this.#connection = null
      throw err
    }
  }

  // ------------------------------------------------------------------ renters

  /** Approves the escrow for `amount` when needed, then deposits it. */
  async deposit (token: Address, amount: bigint, options: { signal?: AbortSignal } = {}): Promise<TxResult> {
    checkAmount(amount)
    const wallet = await this.#requireWallet()
    const allowance = await this.#rpc('allowance', async () => await this.#tokenCall(token, 'allowance', [wallet.address, this.escrow]) as bigint)
    if (allowance < amount) {
      await this.#send(token, this.#tokenIface.encodeFunctionData('approve', [this.escrow, amount]), 'approve', options.signal)
    }
    return await this.#sendEscrow('deposit', [token, amount], options.signal)
  }

  async announceWithdrawal (token: Address, amount: bigint, options: { signal?: AbortSignal } = {}): Promise<TxResult> {
    if (amount < 0n) throw new ChainError('The amount must not be negative.', 'BAD_INPUT', false)
    return await this.#sendEscrow('announceWithdrawal', [token, amount], options.signal)
  }

  async withdraw (token: Address, options: { signal?: AbortSignal } = {}): Promise<TxResult> {
    return await this.#sendEscrow('withdraw', [token], options.signal)
  }

  async account (renter: Address, token: Address): Promise<EscrowAccount> {
    const [balance, pendingWithdrawal, unlockAt] = await this.#view('accountOf', [renter, token]) as [bigint, bigint, bigint]
    const pendingCovered = pendingWithdrawal < balance ? pendingWithdrawal : balance
    return { balance, pendingWithdrawal, unlockAt: Number(unlockAt) * 1000, available: balance - pendingCovered }
  }

  // ------------------------------------------------------------------ providers

  async setPayoutAddress (payout: Address, options: { signal?: AbortSignal } = {}): Promise<TxResult> {
    checkAddress(payout, 'payout address')
    return await this.#sendEscrow('setPayoutAddress', [payout], options.signal)
  }

  async payoutAddress (provider: Address): Promise<Address> {
    return getAddress(await this.#view('payoutOf', [provider]) as string) as Address
  }

  /** What a lease was paid so far, by its voucher key or its identity. */
  async paid (lease: Hex | VoucherIdentity): Promise<bigint> {
    const key = typeof lease === 'string' ? lease : voucherKey(lease)
    return await this.#view('paidByKey', [key]) as bigint
  }

  /** Seconds between announcing a withdrawal and being able to withdraw it. */
  async withdrawalDelaySec (): Promise<number> {
    return Number(await this.#view('withdrawalDelay', []) as bigint)
  }

  /** A token's symbol and decimals, for showing amounts. */
  async tokenMetadata (token: Address): Promise<{ symbol: string, decimals: number }> {
    return await this.#rpc('token metadata', async () => ({
      symbol: String(await this.#tokenCall(token, 'symbol', [])),
      decimals: Number(await this.#tokenCall(token, 'decimals', []) as bigint)
    }))
  }

  async tokenBalance (token: Address, holder: Address): Promise<bigint> {
    return await this.#rpc('balanceOf', async () => await this.#tokenCall(token, 'balanceOf', [holder]) as bigint)
  }

  /** The token's `decimals()`, to show amounts in token units. */
  async tokenDecimals (token: Address): Promise<number> {
    return Number(await this.#rpc('decimals', async () => await this.#tokenCall(token, 'decimals', []) as bigint))
  }

  /** What `redeem` would pay now for each voucher (a static call; nothing is sent). */
  async previewRedeem (vouchers: readonly Voucher[]): Promise<RedeemEntryResult[]> {
    const { groups, order } = encodeRedeemGroups(vouchers)
    let words: bigint[] = []
    if (groups.length > 0) {
      const { contract } = await this.#escrowContract()
      const from = this.#key?.address
      words = await this.#rpc('redeem (static)', async () => {
        const fn = contract.getFunction('redeem')
        return [...await fn.staticCall(groups, from === undefined ? {} : { from }) as bigint[]]
      })
    }
    return vouchers.map((v, i) => {
      const position = order[i]
      const word = position === null || position === undefined ? null : words[position]
      if (word === null || word === undefined) return entryResult(v, 0n, 'BAD_SIGNATURE', null)
      const code = REDEEM_CODES[Number(word & 0xffn)] ?? 'BAD_SIGNATURE'
      return entryResult(v, word >> 8n, code, null)
    })
  }

  /**
   * Redeems vouchers in one transaction. Vouchers whose signature has no compact form are not sent
   * and come back as BAD_SIGNATURE. Resolves once the receipt is in; per-entry results are read from
   * the receipt's events.
   */
  async redeem (vouchers: readonly Voucher[], options: RedeemOptions = {}): Promise<RedeemResult> {
    const { groups } = encodeRedeemGroups(vouchers)
    if (groups.length === 0) throw new ChainError('None of the vouchers carries a usable signature; nothing was sent.', 'BAD_INPUT', false)
    const { iface } = await this.#escrowContract()
    const data = iface.encodeFunctionData('redeem', [groups])
    const receipt = await this.#send(this.escrow, data, 'redeem', options.signal, options.onSigned, options.onBroadcast)
    return await this.redeemResult(receipt, vouchers)
  }

  /** The receipt of a transaction, or null while it is not mined (or unknown to the node). */
  async receipt (txHash: Hex): Promise<TransactionReceipt | null> {
    const { provider } = await this.#connect()
    return await this.#rpc('eth_getTransactionReceipt', async () => await provider.getTransactionReceipt(txHash))
  }

  /** Whether the node knows the transaction (mined or waiting in its pool). */
  async knowsTransaction (txHash: Hex): Promise<boolean> {
    const { provider } = await this.#connect()
    return await this.#rpc('eth_getTransactionByHash', async () => (await provider.getTransaction(txHash)) !== null)
  }

  /** Waits for a transaction's receipt (polling), up to the receipt timeout. */
  async waitForReceipt (txHash: Hex, options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<TransactionReceipt> {
    const deadline = Date.now() + (options.timeoutMs ?? this.#receiptTimeoutMs)
    for (;;) {
      options.signal?.throwIfAborted()
      const receipt = await this.receipt(txHash)
      if (receipt !== null) return receipt
      if (Date.now() > deadline) throw new ChainError(`The transaction ${txHash} was not mined in time; it may still be. Settle again later: the ledger is reconciled with the chain first.`, 'TIMEOUT', false)
      await abortableDelay(this.#pollIntervalMs, options.signal)
    }
  }

  /** Per-entry results of a `redeem` transaction's receipt, for the vouchers it was sent with. */
  async redeemResult (receipt: TransactionReceipt, vouchers: readonly Voucher[]): Promise<RedeemResult> {
    const { iface } = await this.#escrowContract()
    const { order } = encodeRedeemGroups(vouchers)
    const reverted = receipt.status !== 1
    const perEntry: Array<{ paid: bigint, paidTotal: bigint | null, code: RedeemCode }> = []
    if (!reverted) {
      for (const log of receipt.logs as readonly Log[]) {
        if (log.address.toLowerCase() !== this.escrow.toLowerCase()) continue
        const parsed = iface.parseLog({ topics: [...log.topics], data: log.data })
        if (parsed === null) continue
        if (parsed.name === 'Redeemed') {
          const amount = parsed.args[1] as bigint
          const paidTotal = parsed.args[2] as bigint
          perEntry.push({ paid: amount, paidTotal, code: 'PAID' })
        } else if (parsed.name === 'RedeemSkipped') {
          perEntry.push({ paid: 0n, paidTotal: null, code: REDEEM_CODES[Number(parsed.args[2])] ?? 'BAD_SIGNATURE' })
        }
      }
    }
    const entries = vouchers.map((v, i) => {
      const position = order[i]
      if (position === null || position === undefined) return entryResult(v, 0n, 'BAD_SIGNATURE', null)
      const found = perEntry[position]
      if (found === undefined) return entryResult(v, 0n, reverted ? 'REVERTED' : 'BAD_SIGNATURE', null)
      const code: RedeemCode = found.code === 'PAID' && found.paidTotal !== null && found.paidTotal < v.cumulativeAmount ? 'CAPPED' : found.code
      return entryResult(v, found.paid, code, found.paidTotal)
    })
    return { txHash: receipt.hash as Hex, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed, reverted, entries }
  }

  // ------------------------------------------------------------------ internals

  async #requireWallet (): Promise<Wallet> {
    if (this.#key === null) throw new ChainError('This needs a payment key to send transactions; none was configured.', 'NO_KEY', false)
    return (await this.#connect()).wallet as Wallet
  }

  async #escrowContract (): Promise<{ contract: Contract, iface: Interface }> {
    this.#contract ??= Promise.all([loadContracts(), this.#connect()]).then(([{ GpumeshEscrow }, { provider }]) => {
      const iface = new Interface(GpumeshEscrow.abi as string[])
      return { iface, contract: new Contract(this.escrow, iface, provider) }
    })
    try {
      return await this.#contract
    } catch (err) {
      this.#contract = null
      throw err
    }
  }

  async #view (name: string, args: unknown[]): Promise<unknown> {
    const { contract } = await this.#escrowContract()
    return await this.#rpc(name, async () => await contract.getFunction(name).staticCall(...args))
  }

  async #tokenCall (token: Address, name: string, args: unknown[]): Promise<unknown> {
    checkAddress(token, 'token')
    const data = this.#tokenIface.encodeFunctionData(name, args)
    const { provider } = await this.#connect()
    const result = await provider.call({ to: token, data })
    return this.#tokenIface.decodeFunctionResult(name, result)[0]
  }

  async #sendEscrow (name: string, args: unknown[], signal?: AbortSignal): Promise<TxResult> {
    const { iface } = await this.#escrowContract()
    const receipt = await this.#send(this.escrow, iface.encodeFunctionData(name, args), name, signal)
    if (receipt.status !== 1) throw new ChainError(`The ${name} transaction ${receipt.hash} reverted.`, 'REVERTED', false)
    return { txHash: receipt.hash as Hex, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed }
  }

  /**
   * Sends one transaction through this key's queue: nonce from the node, gas estimated (a revert
   * shows here, before anything is signed), signed, `onSigned(hash)`, broadcast, receipt awaited.
   */
  async #send (to: string, data: string, what: string, signal?: AbortSignal, onSigned?: (txHash: Hex) => Promise<void> | void,
    onBroadcast?: (txHash: Hex) => Promise<void> | void): Promise<TransactionReceipt> {
    const wallet = await this.#requireWallet()
    const { provider } = await this.#connect()
    signal?.throwIfAborted()
    const hash = await serialized(`${this.rpcUrl}|${wallet.address}`, async () => {
      signal?.throwIfAborted()
      const request: TransactionRequest = { to, data }
      const populated = await this.#rpc(`${what} (prepare)`, async () => {
        const nonce = await provider.getTransactionCount(wallet.address, 'pending')
        return await wallet.populateTransaction({ ...request, nonce, chainId: await this.chainId() })
      })
      const raw = await wallet.signTransaction(populated)
      const txHash = keccak256(raw) as Hex
      if (onSigned !== undefined) await onSigned(txHash)
      await this.#rpc(`${what} (broadcast)`, async () => {
        try {
          await provider.send('eth_sendRawTransaction', [raw])
        } catch (err) {
          // The node already has it (a retry after a lost answer): that is success.
          if (/already known|known transaction|already imported/i.test(String((err as Error).message))) return
          throw err
        }
      })
      this.#logger.debug({ txHash, what, nonce: populated.nonce }, 'transaction sent')
      return txHash
    })
    if (onBroadcast !== undefined) await onBroadcast(hash)
    return await this.waitForReceipt(hash, signal === undefined ? {} : { signal })
  }

  /** Runs an RPC step with a timeout, mapping whatever it throws to a ChainError. */
  async #rpc<T> (what: string, fn: () => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      return await Promise.race([
        fn(),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => { reject(new ChainError(`The node at ${this.rpcUrl} did not answer ${what} within ${this.#rpcTimeoutMs} ms.`, 'NETWORK', true)) }, this.#rpcTimeoutMs)
        })
      ])
    } catch (err) {
      throw toChainError(err, what, this.rpcUrl, await this.#escrowIfaceOrNull())
    } finally {
      clearTimeout(timer)
    }
  }

  async #escrowIfaceOrNull (): Promise<Interface | null> {
    try {
      return new Interface((await loadContracts()).GpumeshEscrow.abi as string[])
    } catch {
      return null
    }
  }
}

function entryResult (v: Voucher, paid: bigint, code: RedeemCode, paidTotal: bigint | null): RedeemEntryResult {
  return { leaseId: v.leaseId, voucherKey: voucherKey(v), paid, paidTotal, code }
}

function checkAmount (amount: bigint): void {
  if (amount <= 0n) throw new ChainError('The amount must be more than zero.', 'BAD_INPUT', false)
}

function checkAddress (value: string, what: string): void {
  if (!isAddress(value)) throw new ChainError(`The ${what} ${value} is not an address.`, 'BAD_INPUT', false)
}

async function abortableDelay (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(new ChainError('Stopped before the transaction was mined.', 'ABORTED', false, { cause: signal?.reason })) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Deploys an escrow with the given withdrawal delay and returns its address. */
export async function deployEscrow (signer: Signer, options: { withdrawalDelaySec: number }): Promise<Address> {
  if (!Number.isInteger(options.withdrawalDelaySec) || options.withdrawalDelaySec < 0) {
    throw new ChainError('The withdrawal delay must be a whole number of seconds, zero or more.', 'BAD_INPUT', false)
  }
  const { GpumeshEscrow } = await loadContracts()
  return await deploy(signer, GpumeshEscrow.abi, GpumeshEscrow.bytecode, [options.withdrawalDelaySec], 'escrow')
}

/** Deploys a test ERC-20 anyone can mint (devnets and tests only). */
export async function deployTestToken (signer: Signer, options: { name?: string, symbol?: string, decimals?: number } = {}): Promise<Address> {
  const { TestToken } = await loadContracts()
  return await deploy(signer, TestToken.abi, TestToken.bytecode, [options.name ?? 'Test USD', options.symbol ?? 'TUSD', options.decimals ?? 6], 'test token')
}

/** Mints test tokens to `to`. */
export async function mintTestToken (signer: Signer, token: Address, to: Address, amount: bigint): Promise<TxResult> {
  checkAmount(amount)
  const { TestToken } = await loadContracts()
  try {
    const contract = new Contract(token, TestToken.abi as string[], signer)
    const tx = await contract.getFunction('mint')(to, amount) as { wait: () => Promise<TransactionReceipt | null> }
    const receipt = await tx.wait()
    if (receipt === null) throw new ChainError('The mint transaction was dropped.', 'UNKNOWN', true)
    return { txHash: receipt.hash as Hex, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed }
  } catch (err) {
    throw toChainError(err, 'mint', null, null)
  }
}

async function deploy (signer: Signer, abi: unknown[], bytecode: string, args: unknown[], what: string): Promise<Address> {
  try {
    const factory = new ContractFactory(abi as string[], bytecode, signer)
    const contract = await factory.deploy(...args)
    await contract.waitForDeployment()
    return getAddress(await contract.getAddress()) as Address
  } catch (err) {
    throw toChainError(err, `deploy ${what}`, null, null)
  }
}
