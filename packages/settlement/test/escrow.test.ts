import { Contract, Interface, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Address, Voucher } from '@gpumesh/protocol'
import { ChainError, deployTestToken, encodeRedeemGroups, loadContracts, mintTestToken, voucherKey } from '../src/index.js'
import type { EscrowClient } from '../src/index.js'
import { WITHDRAWAL_DELAY_SEC, addressOf, fund, increaseTime, leaseId, startChain, voucher } from './helpers.js'
import type { Chain } from './helpers.js'

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const HALF_N = N / 2n

let c: Chain
let keys: string[]
let providerKey: string
let provider: Address
let providerClient: EscrowClient

beforeAll(async () => {
  c = await startChain()
  keys = c.chain.keys
  providerKey = keys[1] as string
  provider = addressOf(providerKey)
  providerClient = c.client(providerKey)
}, 120_000)

afterAll(async () => {
  await c?.stop()
})

/** A fresh renter key (funded with gas by the deployer) so tests do not share balances. */
async function newRenter (): Promise<string> {
  const wallet = Wallet.createRandom()
  const tx = await c.deployer.sendTransaction({ to: wallet.address, value: 10n ** 18n })
  await tx.wait()
  return wallet.privateKey
}

const tokenBalance = async (holder: Address): Promise<bigint> => await providerClient.tokenBalance(c.token, holder)
const v = (lease: `0x${string}`, renterKey: string, cumulativeAmount: bigint, extra: Partial<Parameters<typeof voucher>[0]> = {}): Voucher =>
  voucher({ leaseId: lease, provider, renterKey, token: c.token, cumulativeAmount, domain: c.domain, ...extra })

describe('escrow deposits', () => {
  it('moves the deposit into the renter account and reports it', async () => {
    const renterKey = await newRenter()
    const renter = addressOf(renterKey)
    await fund(c, renterKey, 1_000_000n, 0n)
    const escrowBefore = await tokenBalance(c.escrow)
    await c.client(renterKey).deposit(c.token, 600_000n)
    expect(await tokenBalance(renter)).toBe(400_000n)
    expect(await tokenBalance(c.escrow)).toBe(escrowBefore + 600_000n)
    expect(await providerClient.account(renter, c.token)).toEqual({ balance: 600_000n, pendingWithdrawal: 0n, unlockAt: 0, available: 600_000n })

    expect(await providerClient.tokenMetadata(c.token)).toEqual({ symbol: 'TUSD', decimals: 6 })
    expect(await providerClient.withdrawalDelaySec()).toBe(WITHDRAWAL_DELAY_SEC)
  })

  it('refuses a zero deposit with a typed error before sending', async () => {
    await expect(c.client(keys[9] as string).deposit(c.token, 0n)).rejects.toMatchObject({ name: 'ChainError', code: 'BAD_INPUT' })
  })
})

describe('batch redeem', () => {
  it('pays each lease its increase, across leases and renters, one transfer per batch', async () => {
    const [a, b] = [await newRenter(), await newRenter()]
    await fund(c, a, 1_000n)
    await fund(c, b, 1_000n)
    const [l1, l2, l3] = [leaseId(), leaseId(), leaseId()]
    const before = await tokenBalance(provider)

    const first = await providerClient.redeem([v(l1, a, 100n), v(l2, a, 200n), v(l3, b, 300n)])
    expect(first.entries.map((e) => [e.code, e.paid])).toEqual([['PAID', 100n], ['PAID', 200n], ['PAID', 300n]])
    expect(await tokenBalance(provider)).toBe(before + 600n)
    expect((await providerClient.account(addressOf(a), c.token)).balance).toBe(700n)
    expect((await providerClient.account(addressOf(b), c.token)).balance).toBe(700n)
    expect(await providerClient.paid({ leaseId: l1, provider, renter: addressOf(a), token: c.token })).toBe(100n)
    // one Transfer event from the token for the whole group
    const receipt = await providerClient.receipt(first.txHash)
    const transferTopic = new Interface(['event Transfer(address indexed from, address indexed to, uint256 value)']).getEvent('Transfer')?.topicHash
    expect(receipt?.logs.filter((log) => log.address.toLowerCase() === c.token.toLowerCase() && log.topics[0] === transferTopic)).toHaveLength(1)

    // partial increases: 150 pays 50, an equal and a lower amount pay nothing, nothing reverts
    const second = await providerClient.redeem([v(l1, a, 150n, { sequence: 2n }), v(l2, a, 200n, { sequence: 2n }), v(l3, b, 250n, { sequence: 2n })])
    expect(second.reverted).toBe(false)
    expect(second.entries.map((e) => [e.code, e.paid])).toEqual([['PAID', 50n], ['REPLAY', 0n], ['REPLAY', 0n]])
    expect(await tokenBalance(provider)).toBe(before + 650n)
    expect((await providerClient.account(addressOf(a), c.token)).balance).toBe(650n)
    expect((await providerClient.account(addressOf(b), c.token)).balance).toBe(700n)

    // the very same vouchers again: a replay pays nothing
    const replay = await providerClient.redeem([v(l1, a, 150n, { sequence: 2n })])
    expect(replay.entries[0]).toMatchObject({ code: 'REPLAY', paid: 0n })
    expect(await tokenBalance(provider)).toBe(before + 650n)
  })

  it('caps a lease at the renter balance and pays the remainder after a new deposit', async () => {
    const renterKey = await newRenter()
    await fund(c, renterKey, 600n, 100n)
    const lease = leaseId()
    const before = await tokenBalance(provider)
    const capped = await providerClient.redeem([v(lease, renterKey, 300n)])
    expect(capped.entries[0]).toMatchObject({ code: 'CAPPED', paid: 100n, paidTotal: 100n })
    expect((await providerClient.account(addressOf(renterKey), c.token)).balance).toBe(0n)

    const empty = await providerClient.redeem([v(lease, renterKey, 300n)])
    expect(empty.entries[0]).toMatchObject({ code: 'NO_BALANCE', paid: 0n })

    await c.client(renterKey).deposit(c.token, 500n)
    const rest = await providerClient.redeem([v(lease, renterKey, 300n)])
    expect(rest.entries[0]).toMatchObject({ code: 'PAID', paid: 200n, paidTotal: 300n })
    expect(await tokenBalance(provider)).toBe(before + 300n)
    expect((await providerClient.account(addressOf(renterKey), c.token)).balance).toBe(300n)
  })

  it('pays the payout address a provider registered, whoever sends the batch', async () => {
    const renterKey = await newRenter()
    await fund(c, renterKey, 1_000n)
    const fleetProviderKey = keys[2] as string
    const fleetProvider = addressOf(fleetProviderKey)
    const treasury = addressOf(keys[7] as string)
    await c.client(fleetProviderKey).setPayoutAddress(treasury)
    expect(await providerClient.payoutAddress(fleetProvider)).toBe(treasury)
    const [treasuryBefore, providerBefore] = [await tokenBalance(treasury), await tokenBalance(fleetProvider)]
    const lease = leaseId()
    // the renter itself sends the provider's voucher: money still goes to the provider's payout address
    const result = await c.client(renterKey).redeem([voucher({ leaseId: lease, provider: fleetProvider, renterKey, token: c.token, cumulativeAmount: 400n, domain: c.domain })])
    expect(result.entries[0]).toMatchObject({ code: 'PAID', paid: 400n })
    expect(await tokenBalance(treasury)).toBe(treasuryBefore + 400n)
    expect(await tokenBalance(fleetProvider)).toBe(providerBefore)
  })
})

describe('groups', () => {
  it('groups vouchers by provider and token, one transfer each, and reports entries in the order given', async () => {
    const renterKey = await newRenter()
    const renter = addressOf(renterKey)
    const secondToken = await deployTestToken(c.deployer, { symbol: 'TEUR' })
    await fund(c, renterKey, 1_000n)
    await mintTestToken(c.deployer, secondToken, renter, 1_000n)
    await c.client(renterKey).deposit(secondToken, 1_000n)
    const otherProviderKey = keys[2] as string
    const otherProvider = addressOf(otherProviderKey)
    const otherPayee = await providerClient.payoutAddress(otherProvider)
    const before = [await tokenBalance(provider), await providerClient.tokenBalance(secondToken, provider), await tokenBalance(otherPayee)]
    const vouchers = [
      v(leaseId(), renterKey, 10n),
      v(leaseId(), renterKey, 20n, { token: secondToken }),
      voucher({ leaseId: leaseId(), provider: otherProvider, renterKey, token: c.token, cumulativeAmount: 30n, domain: c.domain }),
      v(leaseId(), renterKey, 40n),
      v(leaseId(), renterKey, 50n, { token: secondToken })
    ]
    const result = await providerClient.redeem(vouchers)
    expect(result.entries.map((e) => [e.leaseId, e.paid, e.code])).toEqual(vouchers.map((x) => [x.leaseId, x.cumulativeAmount, 'PAID']))
    expect(result.entries.map((e) => e.voucherKey)).toEqual(vouchers.map((x) => voucherKey(x)))
    expect([await tokenBalance(provider), await providerClient.tokenBalance(secondToken, provider), await tokenBalance(otherPayee)])
      .toEqual([(before[0] as bigint) + 50n, (before[1] as bigint) + 70n, (before[2] as bigint) + 30n])
    const receipt = await providerClient.receipt(result.txHash)
    const transferTopic = new Interface(['event Transfer(address indexed from, address indexed to, uint256 value)']).getEvent('Transfer')?.topicHash
    expect(receipt?.logs.filter((log) => log.topics[0] === transferTopic)).toHaveLength(3)
    // what a static call says now: every entry is a replay
    expect((await providerClient.previewRedeem(vouchers)).map((e) => e.code)).toEqual(['REPLAY', 'REPLAY', 'REPLAY', 'REPLAY', 'REPLAY'])
  })
})

describe('rejections', () => {
  it('reports every bad entry on its own and pays the good one, without reverting the batch', async () => {
    const renterKey = await newRenter()
    const poorKey = await newRenter()
    const renter = addressOf(renterKey)
    await fund(c, renterKey, 10_000n)
    const otherEscrow = addressOf(keys[8] as string)
    const otherToken = addressOf(keys[6] as string)
    const good = v(leaseId(), renterKey, 100n)
    const wrongSigner = { ...v(leaseId(), keys[5] as string, 100n), renter }
    const otherChain = v(leaseId(), renterKey, 100n, { signDomain: { chainId: c.domain.chainId + 1n, verifyingContract: c.escrow } })
    const otherContract = v(leaseId(), renterKey, 100n, { signDomain: { chainId: c.domain.chainId, verifyingContract: otherEscrow } })
    const otherTokenVoucher = { ...v(leaseId(), renterKey, 100n, { token: otherToken }), token: c.token }
    const noBalance = v(leaseId(), poorKey, 100n)
    const before = await tokenBalance(provider)
    const result = await providerClient.redeem([wrongSigner, good, otherChain, otherContract, otherTokenVoucher, noBalance])
    expect(result.reverted).toBe(false)
    expect(result.entries.map((e) => e.code)).toEqual(['WRONG_SIGNER', 'PAID', 'WRONG_SIGNER', 'WRONG_SIGNER', 'WRONG_SIGNER', 'NO_BALANCE'])
    expect(result.entries.map((e) => e.paid)).toEqual([0n, 100n, 0n, 0n, 0n, 0n])
    expect(await tokenBalance(provider)).toBe(before + 100n)
    expect((await providerClient.account(renter, c.token)).balance).toBe(9_900n)
    expect(await providerClient.paid(voucherKey(wrongSigner))).toBe(0n)
  })

  it('rejects a high-s signature in the contract, and a malleated one before sending', async () => {
    const renterKey = await newRenter()
    await fund(c, renterKey, 1_000n)
    const good = v(leaseId(), renterKey, 100n)
    const highS = v(leaseId(), renterKey, 100n)
    const { groups } = encodeRedeemGroups([good, highS])
    const entry = groups[0]?.entries[1]
    if (entry === undefined) throw new Error('no entry')
    // s just above n/2 (the top bit clear, so it is representable in the compact form)
    entry.vs = `0x${(HALF_N + 1n).toString(16).padStart(64, '0')}`
    const { GpumeshEscrow } = await loadContracts()
    const escrow = new Contract(c.escrow, GpumeshEscrow.abi as string[], new Wallet(providerKey, c.rpc))
    const before = await tokenBalance(provider)
    const results = await escrow.getFunction('redeem').staticCall(groups) as bigint[]
    expect(results.map((word) => [word >> 8n, word & 0xffn])).toEqual([[100n, 0n], [0n, 3n]])
    const tx = await escrow.getFunction('redeem')(groups) as { wait: () => Promise<unknown> }
    await tx.wait()
    expect(await tokenBalance(provider)).toBe(before + 100n)

    // the malleated twin of a valid signature (s' = n - s, v flipped) has no compact form: never sent
    const sig = highS.signature.signature
    const s = BigInt(`0x${sig.slice(66, 130)}`)
    const flippedV = sig.slice(130) === '1b' ? '1c' : '1b'
    const malleated: Voucher = { ...highS, signature: { ...highS.signature, signature: `${sig.slice(0, 66)}${(N - s).toString(16).padStart(64, '0')}${flippedV}` as `0x${string}` } }
    const viaClient = await providerClient.redeem([v(leaseId(), renterKey, 50n), malleated])
    expect(viaClient.entries.map((e) => [e.code, e.paid])).toEqual([['PAID', 50n], ['BAD_SIGNATURE', 0n]])
    expect(await tokenBalance(provider)).toBe(before + 150n)
  })
})

describe('transaction queue', () => {
  it('serializes concurrent transactions of one key, even from two clients, so no nonce is reused', async () => {
    const key = await newRenter()
    const [one, two] = [c.client(key), c.client(key)]
    const nonceBefore = await c.rpc.getTransactionCount(addressOf(key))
    const payouts = Array.from({ length: 6 }, (_, i) => addressOf(keys[i % 3 + 5] as string))
    const results = await Promise.all(payouts.map(async (payout, i) => await (i % 2 === 0 ? one : two).setPayoutAddress(payout)))
    expect(new Set(results.map((r) => r.txHash)).size).toBe(6)
    expect(await c.rpc.getTransactionCount(addressOf(key))).toBe(nonceBefore + 6)
    // The queue orders sends, not calls (each call prepares before it queues): the payout that stands
    // is the one whose transaction was mined last.
    const last = results.reduce((best, r, i) => (r.blockNumber > (results[best]?.blockNumber ?? -1) ? i : best), 0)
    expect(await one.payoutAddress(addressOf(key))).toBe(payouts[last])
  })
})

describe('withdrawals', () => {
  it('waits out the delay, and redemptions during it come first', async () => {
    const renterKey = await newRenter()
    const renter = addressOf(renterKey)
    const renterClient = c.client(renterKey)
    await fund(c, renterKey, 1_000n)
    await renterClient.announceWithdrawal(c.token, 600n)
    const account = await renterClient.account(renter, c.token)
    expect(account).toMatchObject({ balance: 1_000n, pendingWithdrawal: 600n, available: 400n })
    const block = await c.rpc.getBlock('latest')
    expect(account.unlockAt).toBe(((block?.timestamp ?? 0) + WITHDRAWAL_DELAY_SEC) * 1000)

    const early = await renterClient.withdraw(c.token).catch((err: unknown) => err)
    expect(early).toBeInstanceOf(ChainError)
    expect(early).toMatchObject({ code: 'REVERTED', revertReason: 'WithdrawalLocked', retryable: false })
    expect(await tokenBalance(renter)).toBe(0n)

    // a provider redeems during the delay: 500 leaves 500 in the account, less than announced
    const redeemed = await providerClient.redeem([v(leaseId(), renterKey, 500n)])
    expect(redeemed.entries[0]).toMatchObject({ code: 'PAID', paid: 500n })
    expect(await renterClient.account(renter, c.token)).toMatchObject({ balance: 500n, pendingWithdrawal: 600n, available: 0n })

    await increaseTime(c, WITHDRAWAL_DELAY_SEC)
    await renterClient.withdraw(c.token)
    expect(await tokenBalance(renter)).toBe(500n)
    expect(await renterClient.account(renter, c.token)).toEqual({ balance: 0n, pendingWithdrawal: 0n, unlockAt: 0, available: 0n })
    await expect(renterClient.withdraw(c.token)).rejects.toMatchObject({ code: 'REVERTED', revertReason: 'NoWithdrawalAnnounced' })
  })
})
