import { hexToBytes, ProtocolError, publicKeyToAddress, settlementDomain, verifyVoucher } from '@gpumesh/protocol'
import type { Voucher } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger, VoucherRecord } from '@gpumesh/ledger'
import { jsonReplacer } from '@gpumesh/protocol'
import { VoucherRefusedError } from './errors.js'

export interface VoucherCheckContext {
  /** The lease's `escrow` is the settlement domain's verifying contract (the zero address off-chain). */
  lease: Pick<LeaseRecord, 'leaseId' | 'provider' | 'renter' | 'token' | 'chainId' | 'escrow'>
  /** The newest accepted voucher, or null. */
  latest: Pick<VoucherRecord, 'sequence' | 'cumulativeAmount' | 'signature'> | null
  /** Cumulative amount of the newest usage report sent. */
  reportedCumulative: bigint
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/**
 * Decides whether a (decoded, schema-valid) voucher may be accepted for this lease. Returns 'duplicate'
 * for an exact resend of the newest voucher, 'new' for one to store; throws VoucherRefusedError with
 * the reason otherwise. Cheap checks first; the signature last.
 */
export function checkVoucher (voucher: Voucher, ctx: VoucherCheckContext): 'new' | 'duplicate' {
  const { lease, latest } = ctx
  if (!same(voucher.leaseId, lease.leaseId)) throw new VoucherRefusedError('WRONG_LEASE', `voucher is for lease ${voucher.leaseId}`)
  if (!same(voucher.provider, lease.provider)) throw new VoucherRefusedError('WRONG_PROVIDER', `voucher pays ${voucher.provider}, not this provider`)
  if (!same(voucher.token, lease.token)) throw new VoucherRefusedError('WRONG_TOKEN', `voucher is in token ${voucher.token}, not ${lease.token}`)
  if (voucher.chainId !== lease.chainId || !same(voucher.verifyingContract, lease.escrow)) {
    throw new VoucherRefusedError('WRONG_DOMAIN', `voucher is for chain ${voucher.chainId} contract ${voucher.verifyingContract}`)
  }
  if (!same(voucher.renter, lease.renter)) throw new VoucherRefusedError('WRONG_SIGNER', `voucher names renter ${voucher.renter}, not the lease's`)
  let signer: string
  try {
    signer = publicKeyToAddress(hexToBytes(voucher.signature.publicKey, 33))
  } catch (err) {
    throw new VoucherRefusedError('BAD_SIGNATURE', 'voucher carries no valid public key', { cause: err })
  }
  if (!same(signer, lease.renter)) throw new VoucherRefusedError('WRONG_SIGNER', `voucher is signed by ${signer}, not the lease's renter`)
  if (latest !== null && voucher.sequence === latest.sequence && voucher.cumulativeAmount === latest.cumulativeAmount &&
    voucher.signature.signature === latest.signature) {
    return 'duplicate'
  }
  if (latest !== null && voucher.sequence <= latest.sequence) {
    throw new VoucherRefusedError('SEQUENCE_NOT_HIGHER', `sequence ${voucher.sequence} is not above ${latest.sequence}`)
  }
  const lastAmount = latest?.cumulativeAmount ?? 0n
  if (voucher.cumulativeAmount <= lastAmount) {
    throw new VoucherRefusedError('AMOUNT_NOT_HIGHER', `cumulative amount ${voucher.cumulativeAmount} is not above ${lastAmount}`)
  }
  if (voucher.cumulativeAmount > ctx.reportedCumulative) {
    throw new VoucherRefusedError('AMOUNT_ABOVE_REPORTED', `cumulative amount ${voucher.cumulativeAmount} is above the ${ctx.reportedCumulative} reported`)
  }
  try {
    verifyVoucher(voucher, settlementDomain(lease))
  } catch (err) {
    if (err instanceof ProtocolError) throw new VoucherRefusedError('BAD_SIGNATURE', `voucher signature: ${err.message}`, { cause: err })
    throw err
  }
  return 'new'
}

export interface AcceptedVoucher {
  /** False for an exact resend of the newest voucher (nothing stored). */
  stored: boolean
  cumulativeAmount: bigint
  sequence: bigint
}

/**
 * Checks a voucher against the ledger's view of the lease and stores it (ledger.recordVoucher).
 * Throws VoucherRefusedError, or WRONG_LEASE when the ledger has no such lease.
 */
export function acceptVoucher (ledger: Ledger, voucher: Voucher, leaseId: string = voucher.leaseId): AcceptedVoucher {
  const lease = ledger.getLease(leaseId)
  if (lease === null) throw new VoucherRefusedError('WRONG_LEASE', `no lease ${leaseId}`)
  const latest = ledger.latestVoucher(lease.leaseId)
  const reportedCumulative = ledger.lastUsagePeriod(lease.leaseId)?.cumulativeAmount ?? 0n
  const verdict = checkVoucher(voucher, { lease, latest, reportedCumulative })
  if (verdict === 'duplicate') return { stored: false, cumulativeAmount: voucher.cumulativeAmount, sequence: voucher.sequence }
  const stored = ledger.recordVoucher({
    leaseId: lease.leaseId,
    sequence: voucher.sequence,
    cumulativeAmount: voucher.cumulativeAmount,
    signature: voucher.signature.signature,
    body: JSON.stringify(voucher, jsonReplacer)
  })
  return { stored, cumulativeAmount: voucher.cumulativeAmount, sequence: voucher.sequence }
}
