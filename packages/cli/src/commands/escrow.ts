import { parseArgs } from 'node:util'
import { JsonRpcProvider, NonceManager, Wallet } from 'ethers'
import { jsonReplacer, type Address } from '@gpumesh/protocol'
import { deployEscrow, deployTestToken, mintTestToken } from '@gpumesh/settlement'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { loadIdentity } from '../identity.js'
import { obtainPassword } from '../prompt.js'
import {
  addressOption, amountOption, checkAmountText, escrowClient, requireToken, resolveChainTarget, tokenUnits, type ChainTarget
} from '../chain.js'
import type { Command, CommandContext } from '../context.js'

/**
 * A renter's escrow account: deposit, look, announce a withdrawal, withdraw after the delay; and
 * `escrow deploy` for whoever runs a chain. Every command signs with the data directory's payment key.
 */

const CHAIN_OPTIONS = {
  rpc: { type: 'string' },
  escrow: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  'data-dir': { type: 'string' }
} as const

const CHAIN_USAGE = '[--rpc URL] [--escrow ADDRESS] [--token ADDRESS] [--json] [--data-dir DIR]'
const DEFAULT_WITHDRAWAL_DELAY_SEC = 24 * 3600

interface Signer { address: Address, privateKey: string }

async function signer (ctx: CommandContext, dataDir: string | undefined): Promise<Signer> {
  const password = await obtainPassword(ctx, { confirm: false, allowEmpty: true })
  const identity = await loadIdentity(resolveDataDir(dataDir, ctx), password)
  return { address: identity.address as Address, privateKey: identity.wallet.privateKey }
}

function print (ctx: CommandContext, json: boolean, value: unknown, lines: string[]): void {
  ctx.stdout(json ? JSON.stringify(value, jsonReplacer) + '\n' : lines.join('\n') + '\n')
}

export const escrowDeployCommand: Command = {
  name: 'escrow deploy',
  summary: 'Deploy the escrow contract (and, for a devnet, a test stablecoin) with this data directory\'s key.',
  usage: 'escrow deploy [--rpc URL] [--withdrawal-delay SECONDS] [--test-token] [--mint AMOUNT --to ADDRESS ...] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        rpc: { type: 'string' },
        'withdrawal-delay': { type: 'string', default: String(DEFAULT_WITHDRAWAL_DELAY_SEC) },
        'test-token': { type: 'boolean', default: false },
        mint: { type: 'string' },
        to: { type: 'string', multiple: true, default: [] },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const delay = Number(values['withdrawal-delay'])
    if (!Number.isInteger(delay) || delay < 0 || delay > 365 * 24 * 3600) {
      throw new CliError('BAD_OPTION', '--withdrawal-delay must be a whole number of seconds from 0 to a year.', { exitCode: EXIT.USAGE })
    }
    if (values.mint != null && !values['test-token']) throw new CliError('BAD_OPTION', '--mint goes with --test-token.', { exitCode: EXIT.USAGE })
    const rpcUrl = values.rpc ?? ctx.env.GPUMESH_RPC_URL
    if (rpcUrl == null || rpcUrl === '') throw new CliError('BAD_OPTION', 'Pass --rpc URL or set GPUMESH_RPC_URL: the chain to deploy on.', { exitCode: EXIT.USAGE })
    const recipients = values.to.map((a) => addressOption(a, '--to'))
    const key = await signer(ctx, values['data-dir'])
    // No request cache (as EscrowClient): a cached nonce would make the token deployed right after the escrow collide with it.
    const provider = new JsonRpcProvider(rpcUrl, undefined, { cacheTimeout: -1 })
    try {
      const wallet = new NonceManager(new Wallet(key.privateKey, provider))
      const chainId = (await provider.getNetwork()).chainId
      const escrow = await deployEscrow(wallet, { withdrawalDelaySec: delay })
      let token: Address | null = null
      if (values['test-token']) {
        token = await deployTestToken(wallet, { decimals: 6 })
        const amount = values.mint == null ? null : amountOption(values.mint, 6, '--mint')
        if (amount != null) for (const to of recipients.length > 0 ? recipients : [key.address]) await mintTestToken(wallet, token, to, amount)
      }
      print(ctx, values.json, { chainId, escrow, token, withdrawalDelaySec: delay, deployer: key.address }, [
        `Escrow deployed at ${escrow} on chain ${chainId} (withdrawal delay ${delay} s), by ${key.address}.`,
        ...(token != null ? [`Test token (6 decimals) at ${token}${values.mint != null ? `; minted ${values.mint} to ${(recipients.length > 0 ? recipients : [key.address]).join(', ')}` : ''}.`] : []),
        `Providers: settlement.mode onchain, settlement.rpcUrl ${rpcUrl}, settlement.escrowAddress ${escrow}${token != null ? `, pricing.token ${token}` : ''}.`
      ])
      return EXIT.OK
    } finally {
      provider.destroy()
    }
  }
}

/** A renter's account at the escrow: its key, the chain, the token and its decimals (read on chain). */
interface AccountSession {
  target: ChainTarget
  client: ReturnType<typeof escrowClient>
  key: Signer
  token: Address
  decimals: number
}

async function withAccount<T> (ctx: CommandContext, values: { rpc?: string | undefined, escrow?: string | undefined, token?: string | undefined, 'data-dir'?: string | undefined }, fn: (session: AccountSession) => Promise<T>): Promise<T> {
  const target = resolveChainTarget(ctx, values)
  const token = requireToken(target)
  const key = await signer(ctx, values['data-dir'])
  const client = escrowClient(target, key.privateKey)
  try {
    return await fn({ target, client, key, token, decimals: await client.tokenDecimals(token) })
  } finally {
    client.close()
  }
}

export const escrowDepositCommand: Command = {
  name: 'escrow deposit',
  summary: 'Deposit tokens into your escrow account, from which any provider you lease from is paid.',
  usage: `escrow deposit AMOUNT ${CHAIN_USAGE}`,
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({ args: argv, options: CHAIN_OPTIONS, strict: true, allowPositionals: true })
    const text = checkAmountText(positionals[0], 'AMOUNT')
    return await withAccount(ctx, values, async ({ target, client, key, token, decimals }) => {
      const amount = amountOption(text, decimals, 'AMOUNT')
      const balance = await client.tokenBalance(token, key.address)
      if (balance < amount) {
        throw new CliError('INSUFFICIENT_TOKENS', `${key.address} holds ${tokenUnits(balance, decimals)} of token ${token}, less than the ${tokenUnits(amount, decimals)} to deposit.`)
      }
      const tx = await client.deposit(token, amount)
      const account = await client.account(key.address, token)
      print(ctx, values.json, { renter: key.address, token, deposited: amount, txHash: tx.txHash, account }, [
        `Deposited ${tokenUnits(amount, decimals)} into escrow ${target.escrow} (transaction ${tx.txHash}).`,
        `Your escrow account now holds ${tokenUnits(account.balance, decimals)}; available to providers: ${tokenUnits(account.available, decimals)}.`
      ])
      return EXIT.OK
    })
  }
}

export const escrowStatusCommand: Command = {
  name: 'escrow status',
  summary: 'Show an escrow account: balance, announced withdrawal and when it unlocks, what providers can draw.',
  usage: `escrow status [--renter ADDRESS] ${CHAIN_USAGE}`,
  async run (argv, ctx) {
    const { values } = parseArgs({ args: argv, options: { ...CHAIN_OPTIONS, renter: { type: 'string' } }, strict: true })
    const target = resolveChainTarget(ctx, values)
    const token = requireToken(target)
    const renter = values.renter != null ? addressOption(values.renter, '--renter') : (await signer(ctx, values['data-dir'])).address
    const client = escrowClient(target)
    try {
      const decimals = await client.tokenDecimals(token)
      const account = await client.account(renter, token)
      const unlock = account.pendingWithdrawal > 0n ? new Date(account.unlockAt).toISOString() : null
      print(ctx, values.json, { renter, token, escrow: target.escrow, ...account, decimals }, [
        `Escrow ${target.escrow}, token ${token}, account of ${renter}:`,
        `  balance              ${tokenUnits(account.balance, decimals)}`,
        `  announced withdrawal ${tokenUnits(account.pendingWithdrawal, decimals)}${unlock != null ? ` (withdrawable from ${unlock})` : ''}`,
        `  available            ${tokenUnits(account.available, decimals)} (what providers count on)`
      ])
      return EXIT.OK
    } finally {
      client.close()
    }
  }
}

export const escrowAnnounceWithdrawalCommand: Command = {
  name: 'escrow announce-withdrawal',
  summary: 'Announce a withdrawal from your escrow; it can be taken after the contract\'s delay, once providers could redeem.',
  usage: `escrow announce-withdrawal AMOUNT ${CHAIN_USAGE}`,
  async run (argv, ctx) {
    const { values, positionals } = parseArgs({ args: argv, options: CHAIN_OPTIONS, strict: true, allowPositionals: true })
    const text = checkAmountText(positionals[0], 'AMOUNT')
    return await withAccount(ctx, values, async ({ client, key, token, decimals }) => {
      const amount = amountOption(text, decimals, 'AMOUNT')
      const tx = await client.announceWithdrawal(token, amount)
      const account = await client.account(key.address, token)
      print(ctx, values.json, { renter: key.address, token, announced: amount, txHash: tx.txHash, account }, [
        `Announced a withdrawal of ${tokenUnits(amount, decimals)} (transaction ${tx.txHash}).`,
        `Run "gpumesh escrow withdraw" from ${new Date(account.unlockAt).toISOString()}; providers can still redeem what you owe them until then.`
      ])
      return EXIT.OK
    })
  }
}

export const escrowWithdrawCommand: Command = {
  name: 'escrow withdraw',
  summary: 'Take out the withdrawal you announced, once its delay has passed.',
  usage: `escrow withdraw ${CHAIN_USAGE}`,
  async run (argv, ctx) {
    const { values } = parseArgs({ args: argv, options: CHAIN_OPTIONS, strict: true })
    return await withAccount(ctx, values, async ({ client, key, token, decimals }) => {
      const before = await client.account(key.address, token)
      if (before.pendingWithdrawal === 0n) throw new CliError('NO_WITHDRAWAL', 'No withdrawal is announced: run "gpumesh escrow announce-withdrawal AMOUNT" first.')
      // The chain's clock decides (a devnet's may run ahead of this machine's): the contract refuses too early.
      const tx = await client.withdraw(token).catch((err: unknown) => {
        if ((err as { code?: string }).code === 'REVERTED') {
          throw new CliError('WITHDRAWAL_LOCKED', `The escrow refused the withdrawal: it unlocks at ${new Date(before.unlockAt).toISOString()} by the chain's clock. Run this again then.`, { cause: err })
        }
        throw err
      })
      const after = await client.account(key.address, token)
      const taken = before.balance - after.balance
      print(ctx, values.json, { renter: key.address, token, withdrawn: taken, txHash: tx.txHash, account: after }, [
        `Withdrew ${tokenUnits(taken, decimals)} (transaction ${tx.txHash}); the account holds ${tokenUnits(after.balance, decimals)}.`
      ])
      return EXIT.OK
    })
  }
}
