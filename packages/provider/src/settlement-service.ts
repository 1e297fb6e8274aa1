import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Ledger } from '@gpumesh/ledger'
import type { Address, PaymentKey } from '@gpumesh/protocol'
import { EscrowClient, settleOnchain, unredeemedAmount, type SettleOnchainOptions, type SettleReport } from '@gpumesh/settlement'
import { settlementEscrow, type ProviderConfig } from './config.js'
import { AUTO_REDEEM_CHECK_INTERVAL_MS, SETTLEMENT_LOCK_FILE } from './constants.js'
import { lockProcessFile } from './data-dir-lock.js'
import { EscrowGuard, intervalCost, type RenterCommitments } from './escrow-guard.js'
import { RepeatingTask } from '@gpumesh/net'

/**
 * The provider's side of on-chain settlement: the escrow client for its chain, the exposure guard the
 * lease handler and the job manager consult, and the daemon's automatic redemption
 * (`settlement.autoRedeem`). Off-chain it does nothing. Every redemption — the daemon's or
 * `gpumesh settle onchain` — runs under `settlement.lock` in the data directory, so one key never
 * has two transaction queues.
 */

export class SettlementBusyError extends Error {
  override name = 'SettlementBusyError'
  readonly pid: number
  constructor (pid: number, dataDir: string) {
    super(`Another gpumesh process (pid ${pid}) is settling from ${dataDir} right now; run this again when it has finished.`)
    this.pid = pid
  }
}

/** The hex private key of a payment key (the escrow client signs transactions with it). */
export function privateKeyHex (key: PaymentKey): string {
  if (typeof key === 'string') return key
  return 'privateKey' in key ? key.privateKey : key.signingKey.privateKey
}

/** One on-chain redemption run under the data directory's settlement lock (see `settleOnchain`). */
export async function runOnchainSettlement (dataDir: string, options: SettleOnchainOptions): Promise<SettleReport> {
  const lock = await lockProcessFile(join(dataDir, SETTLEMENT_LOCK_FILE), (holder) => new SettlementBusyError(holder.pid, dataDir))
  try {
    return await settleOnchain(options)
  } finally {
    await lock.release()
  }
}

/**
 * What a renter owes this provider through `escrow` and has not had redeemed (metered or vouchered,
 * whichever is more, per lease: the ledger's `renterExposure`), and the next interval of each of its
 * running leases.
 */
export function renterCommitments (ledger: Ledger, escrow: Address, renter: Address, token: Address): RenterCommitments {
  const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()
  let nextIntervals = 0n
  for (const lease of ledger.activeLeases()) {
    if (!same(lease.renter, renter) || !same(lease.token, token) || !same(lease.escrow, escrow)) continue
    nextIntervals += intervalCost(lease.pricePerGpuHour, lease.gpus.length, lease.billingIntervalSec)
  }
  return { unredeemed: ledger.renterExposure({ escrow, renter, token }).unredeemedOwed, nextIntervals }
}

export interface SettlementServiceComponents {
  ledger: Ledger
  paymentKey: PaymentKey
  logger: Logger
  onError?: (message: string) => void
  /** How often automatic redemption looks whether it is due; default 30 s (`AUTO_REDEEM_CHECK_INTERVAL_MS`). */
  checkIntervalMs?: number
}

export class SettlementService {
  readonly #config: ProviderConfig
  readonly #c: SettlementServiceComponents
  readonly #log: Logger
  readonly #escrow: Address
  /** The escrow client while on chain: made at construction and again at a start after a stop. */
  #client: EscrowClient | null
  /** Null off-chain. */
  readonly guard: EscrowGuard | null
  readonly #task: RepeatingTask | null
  #lastRedeemAt = 0
  #lastReport: SettleReport | null = null

  constructor (config: ProviderConfig, components: SettlementServiceComponents) {
    this.#config = config
    this.#c = components
    this.#log = components.logger
    this.#escrow = settlementEscrow(config)
    this.#client = this.#newClient()
    this.guard = this.#client === null
      ? null
      : new EscrowGuard({
        reader: { account: async (renter, token) => await this.#onchainClient().account(renter, token) },
        commitments: (renter, token) => renterCommitments(components.ledger, this.#escrow, renter, token)
      }, { tokenDecimals: config.pricing.tokenDecimals })
    const auto = config.settlement.autoRedeem
    this.#task = this.#client === null || (auto.everyMinutes == null && auto.whenUnredeemedAbove == null)
      ? null
      : new RepeatingTask({
        name: 'auto-redeem',
        intervalMs: components.checkIntervalMs ?? (auto.whenUnredeemedAbove != null ? AUTO_REDEEM_CHECK_INTERVAL_MS : (auto.everyMinutes ?? 1) * 60_000),
        logger: this.#log
      }, async (signal) => { await this.#autoRedeem(signal) })
  }

  /** The newest run's report, or null. */
  get lastReport (): SettleReport | null { return this.#lastReport }

  /** The escrow client; null off-chain. */
  get client (): EscrowClient | null { return this.#client }

  start (): void {
    this.#client ??= this.#newClient()
    this.#lastRedeemAt = Date.now()
    this.#task?.start()
  }

  async stop (): Promise<void> {
    await this.#task?.stop()
    this.#client?.close()
    this.#client = null
  }

  #newClient (): EscrowClient | null {
    const { mode, rpcUrl } = this.#config.settlement
    if (mode !== 'onchain' || rpcUrl == null) return null
    return new EscrowClient({ rpcUrl, escrow: this.#escrow, privateKey: privateKeyHex(this.#c.paymentKey), logger: this.#c.logger })
  }

  #onchainClient (): EscrowClient {
    const client = this.#client
    if (client === null) throw new Error('the provider is stopped or settles off-chain')
    return client
  }

  /** Redeems now (the `gpumesh settle onchain` path, inside the daemon). Throws off-chain. */
  async settle (options: Omit<SettleOnchainOptions, 'ledger' | 'client'> = {}): Promise<SettleReport> {
    // While stopped, a client of its own for this run only.
    const owned = this.#client === null ? this.#newClient() : null
    const client = this.#client ?? owned
    if (client === null) throw new Error('this provider settles off-chain (settlement.mode: offchain)')
    try {
      const report = await runOnchainSettlement(this.#config.dataDir, { ...options, ledger: this.#c.ledger, client, logger: this.#log })
      if (options.dryRun !== true) this.#lastReport = report
      return report
    } finally {
      owned?.close()
    }
  }

  async #autoRedeem (signal: AbortSignal): Promise<void> {
    const auto = this.#config.settlement.autoRedeem
    const due = auto.everyMinutes != null && Date.now() - this.#lastRedeemAt >= auto.everyMinutes * 60_000
    const above = auto.whenUnredeemedAbove != null && unredeemedAmount(this.#c.ledger, this.#escrow) >= auto.whenUnredeemedAbove
    if (!due && !above) return
    this.#lastRedeemAt = Date.now()
    try {
      const report = await this.settle({ signal })
      if (report.totals.vouchers > 0 || report.reconciled.length > 0) {
        this.#log.info({ paid: report.totals.paid, vouchers: report.totals.vouchers, batches: report.batches.map((b) => b.txHash) }, 'vouchers redeemed at the escrow')
      }
    } catch (err) {
      if (signal.aborted) return
      if (err instanceof SettlementBusyError) {
        this.#log.info({ pid: err.pid }, 'another process is settling; automatic redemption waits for the next round')
        return
      }
      this.#log.warn({ err }, 'automatic redemption failed; it is tried again next round')
      this.#c.onError?.(`automatic redemption failed: ${(err as Error).message}`)
    }
  }
}
