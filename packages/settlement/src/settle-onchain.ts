/**
 * The redemption queue: pays the ledger's newest unredeemed vouchers at the escrow, in batches, and
 * keeps the ledger exactly equal to the chain across crashes.
 *
 * One run:
 *  1. Reconcile. Every on-chain batch of this escrow left `pending` or `submitted` (a crash, a lost
 *     answer) is resolved: its receipt is looked up by the recorded hash (waited for while the node
 *     still holds the transaction); a mined one is confirmed with the per-entry results of its events,
 *     one that never reached the chain is failed. Then each of its leases gets the chain's own paid
 *     figure, which is the truth. Nothing is sent for these batches.
 *  2. Select the newest voucher of every lease of this escrow above what was redeemed, refresh what
 *     the chain already paid each (so nothing is sent for what is paid), and keep those whose increase
 *     is at least `minAmount`.
 *  3. For each batch: record it `pending` durably → sign → record `submitted` with the hash → broadcast
 *     → wait for the receipt → record `confirmed` with what each lease was paid. Retryable RPC failures
 *     are retried with exponential backoff; once a transaction may have reached the node, a retry looks
 *     for that transaction instead of sending another.
 *
 * A crash at any point leaves a batch that step 1 of the next run resolves. Even a second transaction
 * for the same vouchers pays nothing twice: the escrow pays only the increase over what each lease
 * was already paid.
 */
import { decodeVoucher } from '@gpumesh/protocol'
import type { Address, Hex, Voucher } from '@gpumesh/protocol'
import type { Ledger, SettlementBatchRecord, UnsettledVoucher } from '@gpumesh/ledger'
import { DEFAULT_BATCH_SIZE, DEFAULT_RETRY, MAX_BATCH_SIZE } from './constants.js'
import type { RedeemCode } from './constants.js'
import { ChainError } from './errors.js'
import type { EscrowClient, RedeemEntryResult, RedeemResult } from './escrow-client.js'
import type { SettlementLogger } from './types.js'
import { SILENT_LOGGER } from './types.js'

export interface RetryOptions {
  /** Attempts in all (1 = no retry). */
  attempts: number
  /** The first backoff; each next one doubles. */
  baseDelayMs: number
}

/** Progress of a run, awaited: what a caller may log or show as it happens. */
export type SettleProgress =
  | { type: 'reconciled', settlementId: number, state: 'confirmed' | 'failed', txHash: string | null }
  | { type: 'batch-recorded', settlementId: number, leases: number }
  | { type: 'batch-signed', settlementId: number, txHash: Hex }
  | { type: 'batch-broadcast', settlementId: number, txHash: Hex }
  | { type: 'batch-confirmed', settlementId: number, txHash: Hex, paid: bigint }
  | { type: 'retry', settlementId: number | null, attempt: number, delayMs: number, error: ChainError }

export interface SettleOnchainOptions {
  ledger: Ledger
  client: EscrowClient
  /** Only leases whose unredeemed increase is at least this (base units). Default 1. */
  minAmount?: bigint
  /** Only leases whose newest voucher arrived at or after this time (ms). */
  since?: number
  /** Compute what would be sent and paid (a static call), send and record nothing. */
  dryRun?: boolean
  /** Vouchers per transaction. Default 50, at most 200. */
  batchSize?: number
  signal?: AbortSignal
  logger?: SettlementLogger
  retry?: RetryOptions
  onProgress?: (event: SettleProgress) => Promise<void> | void
}

export interface SettledEntry {
  leaseId: string
  renter: Address
  token: Address
  sequence: bigint
  cumulativeAmount: bigint
  /** What the escrow had paid the lease before this batch. */
  paidBefore: bigint
  /** Paid by this batch (would be paid, in a dry run). */
  paid: bigint
  code: RedeemCode
}

export interface SettledBatch {
  /** The ledger's batch id; null in a dry run. */
  settlementId: number | null
  txHash: Hex | null
  blockNumber: number | null
  gasUsed: bigint | null
  state: 'confirmed' | 'failed' | 'dry-run'
  paid: bigint
  entries: SettledEntry[]
}

export interface ReconciledBatch {
  settlementId: number
  txHash: string | null
  state: 'confirmed' | 'failed' | 'unresolved'
  /** What the transaction paid, from its receipt (0 when none). */
  paid: bigint
  leases: number
}

export interface SkippedLease {
  leaseId: string
  /** A contract code (REPLAY, NO_BALANCE, WRONG_SIGNER, …) or a local one (UNREADABLE_VOUCHER, WRONG_DOMAIN). */
  code: string
  reason: string
}

export interface SettleReport {
  escrow: Address
  chainId: bigint
  dryRun: boolean
  reconciled: ReconciledBatch[]
  batches: SettledBatch[]
  skipped: SkippedLease[]
  totals: {
    /** Vouchers sent (or that would be). */
    vouchers: number
    paid: bigint
    /** Paid per token. */
    byToken: Array<{ token: Address, paid: bigint }>
    gasUsed: bigint
  }
}

const SKIP_REASONS: Record<string, string> = {
  REPLAY: 'the escrow already paid this lease as much as the voucher says',
  NO_BALANCE: "the renter's escrow balance in this token is empty",
  WRONG_SIGNER: "the voucher's signature is not the renter's for this escrow, chain and token",
  BAD_SIGNATURE: 'the voucher carries an invalid or malleable signature',
  FAILED: 'the transaction failed',
  REVERTED: 'the transaction reverted'
}

/** How many `paid` views are asked of the node at once while selecting. */
const PAID_READS_AT_ONCE = 16

/** `fn` over `items` with at most `limit` running at once; results in the order of `items`. */
async function mapConcurrently<T, R> (items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const k = next++
      results[k] = await fn(items[k] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

function decodeStoredVoucher (body: string): Voucher | null {
  try {
    return decodeVoucher(new TextEncoder().encode(body))
  } catch {
    return null
  }
}

async function backoff (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(new ChainError('Settling was stopped.', 'ABORTED', false, { cause: signal?.reason })) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Runs `fn`, retrying retryable ChainErrors with exponential backoff. */
async function withRetry<T> (options: { retry: RetryOptions, signal?: AbortSignal, onRetry: (attempt: number, delayMs: number, error: ChainError) => Promise<void> },
  fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted()
    try {
      return await fn(attempt)
    } catch (err) {
      if (!(err instanceof ChainError) || !err.retryable || attempt >= options.retry.attempts) throw err
      const delayMs = options.retry.baseDelayMs * 2 ** (attempt - 1)
      await options.onRetry(attempt, delayMs, err)
      await backoff(delayMs, options.signal)
    }
  }
}

function batchOwner (batch: SettlementBatchRecord): { escrow: string, chainId: string } | null {
  if (batch.batch === null) return null
  try {
    const parsed = JSON.parse(batch.batch) as { escrow?: unknown, chainId?: unknown }
    return typeof parsed.escrow === 'string' && typeof parsed.chainId === 'string' ? { escrow: parsed.escrow, chainId: parsed.chainId } : null
  } catch {
    return null
  }
}

export async function settleOnchain (options: SettleOnchainOptions): Promise<SettleReport> {
  const { ledger, client } = options
  const logger = options.logger ?? SILENT_LOGGER
  const retry = options.retry ?? DEFAULT_RETRY
  const dryRun = options.dryRun === true
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new ChainError(`The batch size must be a whole number from 1 to ${MAX_BATCH_SIZE}.`, 'BAD_INPUT', false)
  }
  if (!dryRun && client.address === null) {
    throw new ChainError('Settling on chain needs a payment key to send transactions; none was configured.', 'NO_KEY', false)
  }
  const minAmount = options.minAmount ?? 1n
  const progress = async (event: SettleProgress): Promise<void> => { if (options.onProgress !== undefined) await options.onProgress(event) }
  const retrying = (settlementId: number | null) => async (attempt: number, delayMs: number, error: ChainError): Promise<void> => {
    logger.warn({ settlementId, attempt, delayMs, err: error.message }, 'escrow RPC failed; retrying')
    await progress({ type: 'retry', settlementId, attempt, delayMs, error })
  }
  const rpc = async <T>(fn: () => Promise<T>, settlementId: number | null = null): Promise<T> =>
    await withRetry({ retry, signal: options.signal, onRetry: retrying(settlementId) }, fn)

  const chainId = await rpc(async () => await client.chainId())
  const report: SettleReport = {
    escrow: client.escrow,
    chainId,
    dryRun,
    reconciled: [],
    batches: [],
    skipped: [],
    totals: { vouchers: 0, paid: 0n, byToken: [], gasUsed: 0n }
  }
  const owner = { escrow: client.escrow.toLowerCase(), chainId: chainId.toString() }

  // 1. Reconcile what a crash (or an unanswered call) left behind.
  for (const batch of ledger.unfinishedSettlements('onchain')) {
    const batchFor = batchOwner(batch)
    if (batchFor !== null && (batchFor.escrow.toLowerCase() !== owner.escrow || batchFor.chainId !== owner.chainId)) continue
    report.reconciled.push(await reconcile(batch))
  }

  // 2. What is left to redeem, against what the chain already paid.
  const candidates: Array<{ unsettled: UnsettledVoucher, voucher: Voucher, paidBefore: bigint }> = []
  const readable: Array<{ unsettled: UnsettledVoucher, voucher: Voucher }> = []
  for (const unsettled of ledger.unsettledVouchers({ kind: 'onchain', escrow: client.escrow, ...(options.since === undefined ? {} : { since: options.since }) })) {
    const leaseId = unsettled.lease.leaseId
    const voucher = decodeStoredVoucher(unsettled.voucher.body)
    if (voucher === null) {
      report.skipped.push({ leaseId, code: 'UNREADABLE_VOUCHER', reason: 'the stored voucher could not be read back' })
    } else if (voucher.verifyingContract.toLowerCase() !== owner.escrow || voucher.chainId !== chainId) {
      report.skipped.push({ leaseId, code: 'WRONG_DOMAIN', reason: `the voucher is signed for chain ${voucher.chainId} and contract ${voucher.verifyingContract}, not this escrow` })
    } else {
      readable.push({ unsettled, voucher })
    }
  }
  const chainPaid = await mapConcurrently(readable, PAID_READS_AT_ONCE, async ({ voucher }) => await rpc(async () => await client.paid(voucher)))
  readable.forEach(({ unsettled, voucher }, k) => {
    const leaseId = unsettled.lease.leaseId
    const paidBefore = chainPaid[k] as bigint
    if (paidBefore !== unsettled.settled && !dryRun) ledger.recordChainPaid([{ leaseId, redeemed: paidBefore }])
    const increase = voucher.cumulativeAmount - paidBefore
    if (increase <= 0n) {
      if (paidBefore === unsettled.settled) report.skipped.push({ leaseId, code: 'REPLAY', reason: SKIP_REASONS.REPLAY as string })
    } else if (increase >= minAmount) {
      candidates.push({ unsettled, voucher, paidBefore })
    }
  })

  // 3. Send them, batch by batch.
  for (let i = 0; i < candidates.length; i += batchSize) {
    options.signal?.throwIfAborted()
    const chunk = candidates.slice(i, i + batchSize)
    const vouchers = chunk.map((c) => c.voucher)
    const settled = dryRun ? await preview(chunk) : await send(chunk, vouchers)
    report.batches.push(settled)
  }

  const byToken = new Map<string, { token: Address, paid: bigint }>()
  for (const batch of report.batches) {
    report.totals.vouchers += batch.entries.length
    report.totals.paid += batch.paid
    report.totals.gasUsed += batch.gasUsed ?? 0n
    for (const entry of batch.entries) {
      if (entry.paid > 0n) {
        const key = entry.token.toLowerCase()
        const row = byToken.get(key) ?? { token: entry.token, paid: 0n }
        row.paid += entry.paid
        byToken.set(key, row)
      }
      if (entry.paid === 0n) report.skipped.push({ leaseId: entry.leaseId, code: entry.code, reason: SKIP_REASONS[entry.code] ?? entry.code })
    }
  }
  report.totals.byToken = [...byToken.values()]
  return report

  async function preview (chunk: typeof candidates): Promise<SettledBatch> {
    const results = await rpc(async () => await client.previewRedeem(chunk.map((c) => c.voucher)))
    const entries = chunk.map((c, k) => settledEntry(c, results[k]))
    return { settlementId: null, txHash: null, blockNumber: null, gasUsed: null, state: 'dry-run', paid: sum(entries), entries }
  }

  async function send (chunk: typeof candidates, vouchers: Voucher[]): Promise<SettledBatch> {
    const record = ledger.recordOnchainBatch(
      chunk.map((c) => ({ leaseId: c.unsettled.lease.leaseId, sequence: c.voucher.sequence, cumulativeAmount: c.voucher.cumulativeAmount })),
      JSON.stringify({ escrow: client.escrow, chainId: chainId.toString() })
    )
    await progress({ type: 'batch-recorded', settlementId: record.id, leases: chunk.length })
    let txHash: Hex | null = null
    let result: RedeemResult
    try {
      result = await withRetry({ retry, signal: options.signal, onRetry: retrying(record.id) }, async () => {
        // A transaction that may already be at the node is looked for, not sent again.
        if (txHash !== null && await client.knowsTransaction(txHash)) {
          return await client.redeemResult(await client.waitForReceipt(txHash, options.signal === undefined ? {} : { signal: options.signal }), vouchers)
        }
        return await client.redeem(vouchers, {
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          onSigned: async (hash) => {
            ledger.markSettlementSubmitted(record.id, hash)
            txHash = hash
            await progress({ type: 'batch-signed', settlementId: record.id, txHash: hash })
          },
          onBroadcast: async (hash) => { await progress({ type: 'batch-broadcast', settlementId: record.id, txHash: hash }) }
        })
      })
    } catch (err) {
      // Nothing may have reached the chain (a refused estimate, no gas, a dead node): the next run's
      // reconciliation decides from the chain. A batch that surely was never broadcast fails now.
      if (txHash === null && err instanceof ChainError && !err.retryable) {
        ledger.failSettlement(record.id, err.message)
      }
      throw err
    }
    return await record_(record.id, chunk, result)
  }

  async function record_ (settlementId: number, chunk: typeof candidates, result: RedeemResult): Promise<SettledBatch> {
    if (result.reverted) {
      ledger.failSettlement(settlementId, 'the transaction reverted', result.txHash)
    } else {
      ledger.confirmSettlement(settlementId, {
        txHash: result.txHash,
        blockNumber: result.blockNumber,
        gasUsed: result.gasUsed,
        entries: result.entries.map((e, k) => ({
          leaseId: chunk[k]?.unsettled.lease.leaseId ?? e.leaseId,
          paidAmount: e.paid,
          code: e.code,
          redeemedTotal: e.paidTotal
        }))
      })
    }
    // Entries that paid nothing: take the chain's figure.
    const unpaid = chunk.filter((_c, k) => (result.entries[k]?.paid ?? 0n) === 0n)
    if (unpaid.length > 0) {
      const paid = []
      for (const c of unpaid) paid.push({ leaseId: c.unsettled.lease.leaseId, redeemed: await rpc(async () => await client.paid(c.voucher), settlementId) })
      ledger.recordChainPaid(paid, result.txHash)
    }
    const entries = chunk.map((c, k) => settledEntry(c, result.entries[k]))
    const paid = sum(entries)
    await progress({ type: 'batch-confirmed', settlementId, txHash: result.txHash, paid })
    logger.info({ settlementId, txHash: result.txHash, leases: chunk.length, paid: paid.toString(), gasUsed: result.gasUsed.toString() }, 'settlement batch confirmed')
    return {
      settlementId,
      txHash: result.txHash,
      blockNumber: result.blockNumber,
      gasUsed: result.gasUsed,
      state: result.reverted ? 'failed' : 'confirmed',
      paid,
      entries
    }
  }

  async function reconcile (batch: SettlementBatchRecord): Promise<ReconciledBatch> {
    const vouchers: Voucher[] = []
    const leaseIds: string[] = []
    for (const entry of batch.entries) {
      const stored = ledger.vouchers(entry.leaseId).find((v) => v.sequence === entry.sequence)
      const voucher = stored === undefined ? null : decodeStoredVoucher(stored.body)
      if (voucher !== null) { vouchers.push(voucher); leaseIds.push(entry.leaseId) }
    }
    let state: ReconciledBatch['state'] = 'unresolved'
    let paid = 0n
    const txHash = batch.txHash as Hex | null
    if (dryRun) return { settlementId: batch.id, txHash, state, paid, leases: batch.entries.length }
    if (txHash !== null) {
      let receipt = await rpc(async () => await client.receipt(txHash), batch.id)
      if (receipt === null && await rpc(async () => await client.knowsTransaction(txHash), batch.id)) {
        receipt = await rpc(async () => await client.waitForReceipt(txHash, options.signal === undefined ? {} : { signal: options.signal }), batch.id)
      }
      if (receipt !== null) {
        const result = await client.redeemResult(receipt, vouchers)
        if (result.reverted) {
          ledger.failSettlement(batch.id, 'the transaction reverted', txHash)
          state = 'failed'
        } else {
          ledger.confirmSettlement(batch.id, {
            txHash,
            blockNumber: result.blockNumber,
            gasUsed: result.gasUsed,
            entries: result.entries.map((e, k) => ({ leaseId: leaseIds[k] ?? e.leaseId, paidAmount: e.paid, code: e.code, redeemedTotal: e.paidTotal }))
          })
          state = 'confirmed'
          paid = result.entries.reduce((total, e) => total + e.paid, 0n)
        }
      }
    }
    if (state === 'unresolved') {
      ledger.failSettlement(batch.id, txHash === null
        ? 'the process stopped before the transaction was signed'
        : 'the transaction never reached the chain', txHash)
      state = 'failed'
    }
    // Whatever happened, each lease's paid amount is what the escrow says.
    const chainPaid = []
    for (const voucher of vouchers) {
      chainPaid.push({ leaseId: voucher.leaseId, redeemed: await rpc(async () => await client.paid(voucher), batch.id) })
    }
    ledger.recordChainPaid(chainPaid, state === 'confirmed' ? txHash : null)
    await progress({ type: 'reconciled', settlementId: batch.id, state, txHash })
    logger.info({ settlementId: batch.id, txHash, state, paid: paid.toString() }, 'settlement batch reconciled with the chain')
    return { settlementId: batch.id, txHash, state, paid, leases: batch.entries.length }
  }
}

function settledEntry (c: { unsettled: UnsettledVoucher, voucher: Voucher, paidBefore: bigint }, result: RedeemEntryResult | undefined): SettledEntry {
  return {
    leaseId: c.unsettled.lease.leaseId,
    renter: c.voucher.renter,
    token: c.voucher.token,
    sequence: c.voucher.sequence,
    cumulativeAmount: c.voucher.cumulativeAmount,
    paidBefore: c.paidBefore,
    paid: result?.paid ?? 0n,
    code: result?.code ?? 'BAD_SIGNATURE'
  }
}

function sum (entries: readonly SettledEntry[]): bigint {
  return entries.reduce((total, e) => total + e.paid, 0n)
}

/** What the ledger holds unredeemed for an escrow (as last recorded): what an auto-redeem threshold compares. */
export function unredeemedAmount (ledger: Ledger, escrow: Address): bigint {
  return ledger.unsettledVouchers({ kind: 'onchain', escrow }).reduce((total, u) => total + u.unsettled, 0n)
}
