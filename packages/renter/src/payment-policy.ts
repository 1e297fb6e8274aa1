import {
  CodedError, cumulativeAmount, isProtocolError, verifyUsageReport,
  type Address, type Eip712Domain, type LeaseTerms, type SignedUsageReport
} from '@gpumesh/protocol'

/**
 * The renter's side of pay-as-you-go: each usage report is checked against the lease terms, the
 * billing rule, the renter's own clock and its budget before a voucher is signed for it. A provider
 * can overcharge by at most the clock tolerance, and never past the budget.
 */

export type ReportRefusalCode =
  | 'BAD_SIGNATURE'
  | 'WRONG_LEASE'
  | 'OUT_OF_ORDER'
  | 'WRONG_AMOUNT'
  | 'AHEAD_OF_CLOCK'
  | 'BEYOND_LEASE'
  | 'BUDGET_SPENT'

export class ReportRefusedError extends CodedError<ReportRefusalCode> {
  static override readonly name = 'ReportRefusedError'
}

export interface PaymentPolicyOptions {
  terms: LeaseTerms
  /** The market domain the provider signs usage reports under. */
  marketDomain: Eip712Domain
  /** Most the renter will pay for this lease, in base units. */
  budget: bigint
  /** Slack allowed between the provider's clock and the renter's: max(this, 2% of elapsed). */
  clockToleranceMs?: number
}

/** What the renter agreed to pay so far: the voucher to sign next. */
export interface VoucherDue {
  cumulativeAmount: bigint
  sequence: bigint
}

const DEFAULT_CLOCK_TOLERANCE_MS = 2_000

/**
 * Tracks one lease's reports. `check(report, observedMs)` either returns the voucher to sign or
 * throws ReportRefusedError; a refused report changes nothing, so a corrected one can follow.
 */
export class PaymentPolicy {
  private readonly options: PaymentPolicyOptions
  private readonly tolerance: number
  private periodIndex = -1
  private endOffsetMs = 0
  private cumulative = 0n
  private sequence = 0n

  constructor (options: PaymentPolicyOptions) {
    this.options = options
    this.tolerance = options.clockToleranceMs ?? DEFAULT_CLOCK_TOLERANCE_MS
  }

  /** Total the renter has agreed to pay so far. */
  get paid (): bigint {
    return this.cumulative
  }

  /** True once the budget cannot cover another period. */
  get budgetSpent (): boolean {
    return this.cumulative >= this.options.budget
  }

  /**
   * @param signed the provider's signed report
   * @param observedMs how long the renter has seen the job run, on its own clock, since it started
   */
  check (signed: SignedUsageReport, observedMs: number): VoucherDue {
    const { terms } = this.options
    const report = signed.report
    let signer: Address
    try {
      signer = verifyUsageReport(signed, this.options.marketDomain)
    } catch (err) {
      if (isProtocolError(err)) throw new ReportRefusedError('BAD_SIGNATURE', `the usage report's signature is not valid (${err.message})`, { cause: err })
      throw err
    }
    if (!sameAddress(signer, terms.provider) || !sameAddress(report.provider, terms.provider)) {
      throw new ReportRefusedError('BAD_SIGNATURE', 'the usage report is not signed by the lease\'s provider')
    }
    if (report.leaseId !== terms.leaseId || !sameAddress(report.renter, terms.renter) || !sameAddress(report.token, terms.token)) {
      throw new ReportRefusedError('WRONG_LEASE', 'the usage report is for another lease, renter or token')
    }
    if (report.periodIndex !== this.periodIndex + 1 || report.startOffsetMs !== this.endOffsetMs || report.endOffsetMs < report.startOffsetMs) {
      throw new ReportRefusedError('OUT_OF_ORDER', `expected period ${this.periodIndex + 1} starting at ${this.endOffsetMs} ms, got period ${report.periodIndex} from ${report.startOffsetMs} ms`)
    }
    if (report.endOffsetMs > terms.durationSec * 1000) {
      throw new ReportRefusedError('BEYOND_LEASE', `the report bills up to ${report.endOffsetMs} ms but the lease is ${terms.durationSec} s long`)
    }
    const slack = Math.max(this.tolerance, Math.floor(observedMs * 0.02))
    if (report.endOffsetMs > observedMs + slack) {
      throw new ReportRefusedError('AHEAD_OF_CLOCK', `the report bills ${report.endOffsetMs} ms but only ${observedMs} ms were observed (tolerance ${slack} ms)`)
    }
    const gpuMs = BigInt(terms.gpus.length) * BigInt(report.endOffsetMs - report.startOffsetMs)
    const totalGpuMs = BigInt(terms.gpus.length) * BigInt(report.endOffsetMs)
    const expectedCumulative = cumulativeAmount(terms.pricePerGpuHour, totalGpuMs)
    if (report.gpuMilliseconds !== gpuMs || report.cumulativeAmount !== expectedCumulative ||
        report.amount !== expectedCumulative - this.cumulative) {
      throw new ReportRefusedError('WRONG_AMOUNT', `the report asks ${report.cumulativeAmount} in total but the terms give ${expectedCumulative}`)
    }
    if (report.cumulativeAmount > this.options.budget) {
      throw new ReportRefusedError('BUDGET_SPENT', `paying ${report.cumulativeAmount} would exceed the budget of ${this.options.budget}`)
    }
    this.periodIndex = report.periodIndex
    this.endOffsetMs = report.endOffsetMs
    this.cumulative = report.cumulativeAmount
    this.sequence += 1n
    return { cumulativeAmount: this.cumulative, sequence: this.sequence }
  }
}

function sameAddress (a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase()
}
