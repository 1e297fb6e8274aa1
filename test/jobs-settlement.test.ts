/**
 * A provider with a settlement contract (escrow address set): its usage reports are still signed under
 * the market domain, so the renter's PaymentPolicy accepts them, and the vouchers the renter signs under
 * the settlement domain (the escrow) are what the provider accepts.
 */
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GpumeshNode } from '@gpumesh/net'
import { ZERO_ADDRESS, type Address } from '@gpumesh/protocol'
import { submitJob, type JobOutcome } from '@gpumesh/renter'
import { startClient, type TestProvider } from './provider-helpers.js'
import { clientOptions, leaseFrom, startJobProvider, trainSpec, trainingBundle } from './jobs-helpers.js'

const ESCROW = '0x5fbdb2315678afecb367f032d93f642f64180aa3' as Address

describe('job payment with a settlement contract', () => {
  let daemon: TestProvider
  let client: GpumeshNode

  beforeAll(async () => {
    ;[daemon, client] = await Promise.all([startJobProvider({ settlement: { escrowAddress: ESCROW } }), startClient()])
  })
  afterAll(async () => {
    await client?.stop()
    await daemon?.stop()
  })

  it('the renter pays every report under the escrow domain; the provider refuses vouchers under another', async () => {
    const bundle = await trainingBundle()
    const run = async (escrow: Address): Promise<JobOutcome & { leaseId: string }> => {
      const wallet = Wallet.createRandom()
      const terms = await leaseFrom(client, daemon.provider.addresses(), wallet, bundle.sha256)
      return await submitJob({ ...clientOptions(client, wallet, terms, 10n ** 12n, escrow), spec: trainSpec(25, 100), bundle: bundle.bytes, bundleSize: bundle.bytes.length })
        .then((outcome) => ({ ...outcome, leaseId: terms.leaseId }))
    }
    const paid = await run(ESCROW)
    expect(paid).toMatchObject({ state: 'completed', exitCode: 0 })
    expect(paid.paymentStopped).toBeUndefined()
    expect(paid.voucherRefused).toBeUndefined()
    const periods = daemon.provider.ledger.usagePeriods(paid.leaseId)
    expect(periods.length).toBeGreaterThanOrEqual(2)
    expect(paid.paid).toBe(periods.at(-1)?.cumulativeAmount)
    expect(daemon.provider.ledger.latestVoucher(paid.leaseId)?.cumulativeAmount).toBe(paid.paid)

    // The same renter code with the off-chain domain: the reports pass its policy, the provider refuses the vouchers.
    const wrong = await run(ZERO_ADDRESS)
    expect(wrong.paymentStopped).toBeUndefined()
    expect(wrong.voucherRefused?.code).toBe('WRONG_DOMAIN')
    expect(daemon.provider.ledger.vouchers(wrong.leaseId)).toEqual([])
  }, 30_000)
})
