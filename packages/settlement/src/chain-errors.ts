/**
 * The one place ethers and JSON-RPC failures become {@link ChainError}s, each with a sentence for
 * users, a code, and whether retrying may help.
 */
import { isError } from 'ethers'
import type { Interface } from 'ethers'
import { ChainError } from './errors.js'

const REVERT_HINTS: Record<string, string> = {
  ZeroAmount: 'the amount must be more than zero',
  AmountTooLarge: 'the amount is larger than the escrow accepts',
  InsufficientBalance: 'the escrow account holds less than that',
  NoWithdrawalAnnounced: 'no withdrawal was announced; announce one first',
  WithdrawalLocked: 'the withdrawal delay has not passed yet',
  TransferFailed: 'the token refused the transfer (check the balance and the allowance)',
  InsufficientAllowance: 'the token allowance is too small',
  InsufficientBalanceToken: 'the token balance is too small'
}

export function toChainError (err: unknown, what: string, rpcUrl: string | null, iface: Interface | null): ChainError {
  if (err instanceof ChainError) return err
  const where = rpcUrl === null ? 'the node' : `the node at ${rpcUrl}`
  const Where = where.charAt(0).toUpperCase() + where.slice(1)
  if (err instanceof Error && err.name === 'AbortError') return new ChainError(`Stopped before ${what} finished.`, 'ABORTED', false, { cause: err })
  if (err instanceof Error && err.name === 'TimeoutError') {
    return new ChainError(`${Where} did not answer ${what} in time; check the RPC URL and try again.`, 'NETWORK', true, { cause: err })
  }
  if (isError(err, 'CALL_EXCEPTION')) {
    let reason: string | null = err.revert?.name ?? null
    if (reason === null && iface !== null && typeof err.data === 'string' && err.data.length >= 10) {
      try {
        reason = iface.parseError(err.data)?.name ?? null
      } catch {
        reason = null
      }
    }
    const hint = reason === null ? 'the contract refused it' : (REVERT_HINTS[reason] ?? `the contract refused it (${reason})`)
    return new ChainError(`The ${what} transaction would fail: ${hint}.`, 'REVERTED', false, { cause: err, revertReason: reason })
  }
  if (isError(err, 'INSUFFICIENT_FUNDS')) {
    return new ChainError(`The sending key cannot pay the gas for ${what}; fund it with the chain's native coin.`, 'INSUFFICIENT_FUNDS', false, { cause: err })
  }
  if (isError(err, 'NONCE_EXPIRED') || isError(err, 'REPLACEMENT_UNDERPRICED') || isError(err, 'TRANSACTION_REPLACED')) {
    return new ChainError(`Another transaction from the same key got in the way of ${what}; try again.`, 'NONCE', true, { cause: err })
  }
  if (isError(err, 'TIMEOUT') || isError(err, 'NETWORK_ERROR') || isError(err, 'SERVER_ERROR')) {
    return new ChainError(`${Where} could not be reached for ${what}; check the RPC URL and try again.`, 'NETWORK', true, { cause: err })
  }
  if (isError(err, 'INVALID_ARGUMENT') || isError(err, 'NUMERIC_FAULT') || isError(err, 'BAD_DATA')) {
    return new ChainError(`The ${what} request was not valid: ${shortMessage(err)}.`, 'BAD_INPUT', false, { cause: err })
  }
  const message = err instanceof Error ? err.message : String(err)
  if (/ECONNREFUSED|ECONNRESET|fetch failed|socket hang up|ETIMEDOUT|EHOSTUNREACH/i.test(message)) {
    return new ChainError(`${Where} could not be reached for ${what}; check the RPC URL and try again.`, 'NETWORK', true, { cause: err })
  }
  if (/nonce too low|nonce too high|replacement transaction underpriced/i.test(message)) {
    return new ChainError(`Another transaction from the same key got in the way of ${what}; try again.`, 'NONCE', true, { cause: err })
  }
  if (/insufficient funds/i.test(message)) {
    return new ChainError(`The sending key cannot pay the gas for ${what}; fund it with the chain's native coin.`, 'INSUFFICIENT_FUNDS', false, { cause: err })
  }
  return new ChainError(`The ${what} call failed at ${where}: ${shortMessage(err)}.`, 'UNKNOWN', false, { cause: err })
}

function shortMessage (err: unknown): string {
  const message = (err as { shortMessage?: unknown }).shortMessage
  const text = typeof message === 'string' ? message : err instanceof Error ? err.message : String(err)
  return text.split('\n')[0]?.replace(/\.$/, '').slice(0, 200) ?? 'unknown error'
}
