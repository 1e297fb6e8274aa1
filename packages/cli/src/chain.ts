import { getAddress } from 'ethers'
import { formatAmount, parseAmount, type Address } from '@gpumesh/protocol'
import { EscrowClient } from '@gpumesh/settlement'
import { CliError, EXIT } from './errors.js'
import type { CommandContext } from './context.js'

/**
 * Where a command finds the chain: flags first, then the environment (`GPUMESH_RPC_URL`,
 * `GPUMESH_ESCROW`, `GPUMESH_TOKEN`), then what the caller read from a provider's config.
 */
export interface ChainFlags {
  rpc?: string | undefined
  escrow?: string | undefined
  token?: string | undefined
}

export interface ChainTarget {
  rpcUrl: string
  escrow: Address
  token: Address | null
}

const usage = (message: string): CliError => new CliError('BAD_OPTION', message, { exitCode: EXIT.USAGE })

export function addressOption (value: string, flag: string): Address {
  try {
    return getAddress(value) as Address
  } catch {
    throw usage(`${flag}: "${value}" is not an Ethereum address.`)
  }
}

export function resolveChainTarget (ctx: CommandContext, flags: ChainFlags, fallback: Partial<ChainTarget> = {}): ChainTarget {
  const rpcUrl = flags.rpc ?? ctx.env.GPUMESH_RPC_URL ?? fallback.rpcUrl
  if (rpcUrl == null || rpcUrl === '') throw usage('No chain to talk to: pass --rpc URL or set GPUMESH_RPC_URL (the JSON-RPC endpoint of the chain the escrow is on).')
  try {
    const url = new URL(rpcUrl)
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new Error('protocol')
  } catch {
    throw usage(`--rpc: "${rpcUrl}" is not an http(s) or ws(s) URL.`)
  }
  const escrowText = flags.escrow ?? ctx.env.GPUMESH_ESCROW ?? fallback.escrow
  if (escrowText == null || escrowText === '') throw usage('No escrow contract: pass --escrow ADDRESS or set GPUMESH_ESCROW ("gpumesh escrow deploy" prints it).')
  const tokenText = flags.token ?? ctx.env.GPUMESH_TOKEN ?? fallback.token ?? null
  return {
    rpcUrl,
    escrow: addressOption(escrowText, '--escrow'),
    token: tokenText == null || tokenText === '' ? null : addressOption(tokenText, '--token')
  }
}

export function requireToken (target: ChainTarget): Address {
  if (target.token == null) throw usage('No token: pass --token ADDRESS or set GPUMESH_TOKEN (the ERC-20 the escrow holds).')
  return target.token
}

/** Refuses what is not an amount in token units before the chain is asked for the token's decimals. */
export function checkAmountText (text: string | undefined, flag: string): string {
  if (text == null) throw usage(`${flag} is required: an amount in token units, like 25.50.`)
  if (!/^\d+(\.\d+)?$/.test(text)) throw usage(`${flag}: "${text}" is not an amount in token units, like 25.50.`)
  return text
}

/** An amount in token units ("25.50") to base units, with the token's decimals. */
export function amountOption (text: string | undefined, decimals: number, flag: string): bigint {
  if (text == null) throw usage(`${flag} is required: an amount in token units, like 25.50.`)
  try {
    const amount = parseAmount(text, decimals)
    if (amount <= 0n) throw new Error('must be above 0')
    return amount
  } catch (err) {
    throw usage(`${flag}: "${text}" ${(err as Error).message}.`)
  }
}

export function tokenUnits (amount: bigint, decimals: number): string {
  return formatAmount(amount, decimals)
}

export function escrowClient (target: ChainTarget, privateKey?: string): EscrowClient {
  return new EscrowClient({ rpcUrl: target.rpcUrl, escrow: target.escrow, ...(privateKey != null ? { privateKey } : {}) })
}
