/**
 * The operator settles its whole fleet in one transaction: the members' newest vouchers (collected
 * with `askFleet('vouchers', …)`) are checked, and those that would pay the operator's payout address
 * something are redeemed together. Renters signed the vouchers and the escrow pays each voucher's
 * provider's payout address, so the operator may submit them; a member whose payout address is not
 * the operator's is left out (and said so). Exactly once holds by construction: the escrow pays each
 * lease only the increase over what it already paid, and vouchers the chain already paid in full are
 * not even sent. Members learn what was paid from the chain, in their own `settle onchain`.
 */
import { ZERO_ADDRESS, type Address, type Voucher } from '@gpumesh/protocol'
import type { EscrowClient, RedeemResult } from '@gpumesh/settlement'
import type { FleetAnswer } from './fleet-client.js'
import type { FleetVouchers } from '@gpumesh/protocol'

export interface FleetSettleSkip {
  peerId: string
  leaseId: string | null
  reason: string
}

export interface FleetSettleReport {
  payout: Address
  /** Vouchers sent in the one transaction (none: nothing was owed). */
  sent: Array<{ peerId: string, voucher: Voucher, paidBefore: bigint }>
  skipped: FleetSettleSkip[]
  /** Members that did not answer. */
  unreachable: Array<{ peerId: string, error: string }>
  result: RedeemResult | null
  /** Paid by this batch, per member peer id. */
  paidByMember: Record<string, bigint>
  paid: bigint
}

export async function settleFleet (options: {
  answers: ReadonlyArray<FleetAnswer<FleetVouchers>>
  client: EscrowClient
  payout: Address
  dryRun?: boolean
  signal?: AbortSignal
}): Promise<FleetSettleReport> {
  const { client, payout } = options
  const chainId = await client.chainId()
  const report: FleetSettleReport = { payout, sent: [], skipped: [], unreachable: [], result: null, paidByMember: {}, paid: 0n }
  const payoutOf = new Map<string, Address>()
  for (const answer of options.answers) {
    if (!answer.ok) { report.unreachable.push({ peerId: answer.peerId, error: answer.error }); continue }
    const { value } = answer
    if (value.escrow === ZERO_ADDRESS) { report.skipped.push({ peerId: answer.peerId, leaseId: null, reason: 'this member settles off chain' }); continue }
    if (value.escrow.toLowerCase() !== client.escrow.toLowerCase() || value.chainId !== chainId) {
      report.skipped.push({ peerId: answer.peerId, leaseId: null, reason: `this member settles at escrow ${value.escrow} on chain ${value.chainId}, not ${client.escrow} on chain ${chainId}` })
      continue
    }
    for (const voucher of value.vouchers) {
      // Only the member's own vouchers, for this escrow: a member cannot slip in another provider's.
      if (voucher.provider.toLowerCase() !== value.member.toLowerCase() || voucher.verifyingContract.toLowerCase() !== client.escrow.toLowerCase() || voucher.chainId !== chainId) {
        report.skipped.push({ peerId: answer.peerId, leaseId: voucher.leaseId, reason: 'the voucher is not this member\'s at this escrow' })
        continue
      }
      let memberPayout = payoutOf.get(voucher.provider)
      if (memberPayout === undefined) {
        memberPayout = await client.payoutAddress(voucher.provider)
        payoutOf.set(voucher.provider, memberPayout)
      }
      if (memberPayout.toLowerCase() !== payout.toLowerCase()) {
        report.skipped.push({ peerId: answer.peerId, leaseId: voucher.leaseId, reason: `the member's payout address is ${memberPayout}, not the fleet's ${payout}; on that host run "gpumesh escrow payout ${payout}"` })
        continue
      }
      const paidBefore = await client.paid(voucher)
      if (voucher.cumulativeAmount <= paidBefore) continue
      report.sent.push({ peerId: answer.peerId, voucher, paidBefore })
    }
  }
  if (report.sent.length === 0) return report
  const vouchers = report.sent.map((s) => s.voucher)
  if (options.dryRun === true) {
    const preview = await client.previewRedeem(vouchers)
    preview.forEach((entry, i) => { addPaid(report, report.sent[i]?.peerId ?? '', entry.paid) })
    return report
  }
  report.result = await client.redeem(vouchers, options.signal != null ? { signal: options.signal } : {})
  report.result.entries.forEach((entry, i) => { addPaid(report, report.sent[i]?.peerId ?? '', entry.paid) })
  return report
}

function addPaid (report: FleetSettleReport, peerId: string, paid: bigint): void {
  report.paidByMember[peerId] = (report.paidByMember[peerId] ?? 0n) + paid
  report.paid += paid
}
