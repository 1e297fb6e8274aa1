// @gpumesh/settlement figures, in one run against a real anvil node: the gas of a plain ERC-20
// transfer of the test token (between two holders that already hold a balance) beside the gas per
// voucher of `redeem` batches (receipt gasUsed / entries, every lease fresh, i.e. first redemption).
//   gas_per_voucher_batch1               one voucher per transaction
//   gas_per_voucher_batch50              50 fresh leases of 10 renters (5 each), one provider
//   gas_per_voucher_batch50_50_renters   50 fresh leases of 50 different renters (worst case)
//   gas_per_voucher_batch50_repeat       the same 50 leases redeemed again with higher amounts
import { randomBytes } from 'node:crypto'
import { JsonRpcProvider, NonceManager, Wallet, Contract } from 'ethers'
import { paymentKeyAddress, signVoucher } from '@gpumesh/protocol'
import { EscrowClient, deployEscrow, deployTestToken, loadContracts, startDevChain } from '@gpumesh/settlement'

const leaseId = () => `0x${randomBytes(32).toString('hex')}`

export async function run () {
  const chain = await startDevChain()
  const rpc = new JsonRpcProvider(chain.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 })
  rpc.pollingInterval = 50
  const clients = []
  try {
    const deployer = new NonceManager(new Wallet(chain.keys[0], rpc))
    const token = await deployTestToken(deployer)
    const escrow = await deployEscrow(deployer, { withdrawalDelaySec: 86_400 })
    const { TestToken } = await loadContracts()
    const tokenAs = (signer) => new Contract(token, TestToken.abi, signer)
    const domain = { chainId: chain.chainId, verifyingContract: escrow }
    const providerKey = chain.keys[1]
    const provider = paymentKeyAddress(providerKey)
    const client = (privateKey) => {
      const c = new EscrowClient({ rpcUrl: chain.rpcUrl, escrow, privateKey, pollIntervalMs: 20 })
      clients.push(c)
      return c
    }
    const providerClient = client(providerKey)

    // A plain transfer between two holders that both hold a balance.
    const [holderA, holderB] = [new Wallet(chain.keys[2], rpc), new Wallet(chain.keys[3], rpc)]
    await (await tokenAs(deployer).mint(holderA.address, 1_000_000n)).wait()
    await (await tokenAs(deployer).mint(holderB.address, 1_000_000n)).wait()
    await (await tokenAs(holderA).transfer(holderB.address, 1n)).wait() // warm nothing: each tx starts cold
    const transfer = await (await tokenAs(holderA).transfer(holderB.address, 12_345n)).wait()

    // Renters: random keys given gas, tokens and a deposit.
    const renters = []
    for (let i = 0; i < 50; i++) {
      const wallet = Wallet.createRandom()
      await (await deployer.sendTransaction({ to: wallet.address, value: 10n ** 17n })).wait()
      await (await tokenAs(deployer).mint(wallet.address, 1_000_000_000n)).wait()
      await client(wallet.privateKey).deposit(token, 1_000_000_000n)
      renters.push(wallet.privateKey)
    }
    // The provider's own token balance is already non-zero, as it is after its first payout.
    await (await tokenAs(deployer).mint(provider, 1n)).wait()

    const voucher = (lease, renterKey, cumulativeAmount, sequence = 1n) => {
      const fields = { leaseId: lease, provider, renter: paymentKeyAddress(renterKey), token, cumulativeAmount, sequence }
      return { type: 'voucher', ...fields, chainId: domain.chainId, verifyingContract: escrow, signature: signVoucher(fields, renterKey, domain) }
    }
    const perVoucher = async (vouchers) => {
      const result = await providerClient.redeem(vouchers)
      if (result.entries.some((e) => e.code !== 'PAID')) throw new Error(`bench batch not fully paid: ${result.entries.map((e) => e.code).join(',')}`)
      return Number(result.gasUsed) / vouchers.length
    }

    const batch1 = await perVoucher([voucher(leaseId(), renters[0], 1_000_000n)])
    const tenRenters = Array.from({ length: 50 }, (_, i) => ({ lease: leaseId(), renter: renters[i % 10] }))
    const batch50 = await perVoucher(tenRenters.map(({ lease, renter }) => voucher(lease, renter, 1_000_000n)))
    const fiftyRenters = Array.from({ length: 50 }, (_, i) => ({ lease: leaseId(), renter: renters[i] }))
    const batch50Distinct = await perVoucher(fiftyRenters.map(({ lease, renter }) => voucher(lease, renter, 1_000_000n)))
    const batch50Repeat = await perVoucher(fiftyRenters.map(({ lease, renter }) => voucher(lease, renter, 2_000_000n, 2n)))

    const erc20 = Number(transfer.gasUsed)
    return {
      erc20_transfer_gas: { value: erc20, unit: 'gas', note: 'test token, both holders already hold a balance' },
      gas_per_voucher_batch1: { value: Math.round(batch1), unit: 'gas/voucher' },
      gas_per_voucher_batch50: { value: Math.round(batch50), unit: 'gas/voucher', renters: 10, vs_erc20_transfer: (batch50 / erc20).toFixed(2) },
      gas_per_voucher_batch50_50_renters: { value: Math.round(batch50Distinct), unit: 'gas/voucher', renters: 50, vs_erc20_transfer: (batch50Distinct / erc20).toFixed(2) },
      gas_per_voucher_batch50_repeat: { value: Math.round(batch50Repeat), unit: 'gas/voucher', vs_erc20_transfer: (batch50Repeat / erc20).toFixed(2) }
    }
  } finally {
    for (const c of clients) c.close()
    rpc.destroy()
    await chain.stop()
  }
}
