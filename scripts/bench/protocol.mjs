// EIP-712 voucher signing and verification: @gpumesh/protocol's fast path against ethers.verifyTypedData,
// measured in the same run on the same voucher. Figures are the median of a few timed rounds.
import { TypedDataEncoder, Wallet, hexlify, randomBytes, verifyTypedData } from 'ethers'
import {
  EIP712_TYPES, VERIFY_KEY_CACHE_SIZE, ethersDomain, paymentKeyAddress, signVoucher, typedData, verifyVoucher
} from '@gpumesh/protocol'
import { median } from './lib/median.mjs'

const ROUNDS = 5
const ROUND_MS = 400

/** Calls `fn(i)` for ROUND_MS, ROUNDS times; returns the median rate in calls per second. */
function rate (fn) {
  for (let i = 0; i < 50; i++) fn(i) // warm up
  const rates = []
  for (let round = 0; round < ROUNDS; round++) {
    let n = 0
    const start = performance.now()
    let elapsed = 0
    while (elapsed < ROUND_MS) {
      for (let k = 0; k < 10; k++) fn(n++)
      elapsed = performance.now() - start
    }
    rates.push(n / (elapsed / 1000))
  }
  return Math.round(median(rates))
}

export async function run () {
  const key = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'
  const wallet = new Wallet(key)
  const domain = { chainId: 31337n, verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' }
  const fields = {
    leaseId: `0x${'a1'.repeat(32)}`,
    provider: '0xFCAd0B19bB29D4674531d6f115237E16AfCE377c',
    renter: paymentKeyAddress(key),
    token: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
    cumulativeAmount: 1_666_664n,
    sequence: 4n
  }
  // A pool of distinct vouchers (as a provider receives them: rising amounts from one renter).
  const vouchers = Array.from({ length: 64 }, (_, i) => {
    const value = { ...fields, cumulativeAmount: fields.cumulativeAmount + BigInt(i), sequence: BigInt(i) }
    return { type: 'voucher', ...value, chainId: domain.chainId, verifyingContract: domain.verifyingContract, signature: signVoucher(value, key, domain) }
  })
  const ethersArgs = vouchers.map((v) => [ethersDomain(domain), { Voucher: EIP712_TYPES.Voucher }, typedData('Voucher', v, domain).message, v.signature.signature])

  const fast = rate((i) => {
    if (verifyVoucher(vouchers[i & 63], domain) !== fields.renter) throw new Error('verify failed')
  })
  const viaEthers = rate((i) => {
    const [d, t, m, s] = ethersArgs[i & 63]
    if (verifyTypedData(d, t, m, s) !== fields.renter) throw new Error('ethers verify failed')
  })
  const signing = rate((i) => signVoucher({ ...fields, sequence: BigInt(i) }, key, domain))
  const signingEthers = rate((i) => {
    const message = typedData('Voucher', { ...fields, sequence: BigInt(i) }, domain).message
    return wallet.signingKey.sign(TypedDataEncoder.hash(ethersDomain(domain), { Voucher: EIP712_TYPES.Voucher }, message))
  })
  // Every voucher by another key, more keys than the verifier's key cache holds: no cache hits.
  const strangers = Array.from({ length: VERIFY_KEY_CACHE_SIZE + 1000 }, () => {
    const stranger = hexlify(randomBytes(32))
    const value = { ...fields, renter: paymentKeyAddress(stranger) }
    return { type: 'voucher', ...value, chainId: domain.chainId, verifyingContract: domain.verifyingContract, signature: signVoucher(value, stranger, domain) }
  })
  const cold = rate((i) => verifyVoucher(strangers[i % strangers.length], domain))

  return {
    verify_eip712_per_s: { value: fast, unit: 'ops/s', speedup_vs_ethers: (fast / viaEthers).toFixed(1) },
    verify_eip712_ethers_per_s: { value: viaEthers, unit: 'ops/s' },
    sign_eip712_per_s: { value: signing, unit: 'ops/s' },
    sign_eip712_ethers_per_s: { value: signingEthers, unit: 'ops/s' },
    verify_eip712_cold_key_per_s: { value: cold, unit: 'ops/s', note: 'every key new to the verifier' }
  }
}
