import { CliError, EXIT } from './errors.js'
import { isOperatorError } from '@gpumesh/provider'
import { initCommand } from './commands/init.js'
import { gpusCommand } from './commands/gpus.js'
import { matcherStartCommand } from './commands/matcher-start.js'
import { offersCommand } from './commands/offers.js'
import { leasesCommand } from './commands/leases.js'
import { providerStartCommand } from './commands/provider-start.js'
import { providerStatusCommand } from './commands/provider-status.js'
import { leaseSubmitCommand } from './commands/lease-submit.js'
import { leaseStatusCommand } from './commands/lease-status.js'
import { leaseLogsCommand } from './commands/lease-logs.js'
import { leaseCancelCommand } from './commands/lease-cancel.js'
import { leaseFetchCommand } from './commands/lease-fetch.js'
import { fleetSignCommand } from './commands/fleet-sign.js'
import { FLEET_COMMANDS } from './commands/fleet.js'
import {
  escrowAnnounceWithdrawalCommand, escrowDeployCommand, escrowDepositCommand, escrowStatusCommand, escrowWithdrawCommand
} from './commands/escrow.js'
import { earningsCommand, settleExportCommand, settleOnchainCommand, settleVerifyCommand } from './commands/settle.js'
import { quoteCommand } from './commands/quote.js'
import { devnetCommand } from './commands/devnet.js'
import type { Command, CommandContext } from './context.js'

export { CliError, EXIT } from './errors.js'
export type { Command, CommandContext } from './context.js'

/**
 * Every subcommand, in the order `gpumesh --help` lists them. A command is a module in `commands/`
 * exporting a `Command`; multi-word commands (`provider start`) are named with a space.
 */
export const COMMANDS: readonly Command[] = [
  initCommand,
  gpusCommand,
  providerStartCommand,
  providerStatusCommand,
  leasesCommand,
  matcherStartCommand,
  offersCommand,
  quoteCommand,
  leaseSubmitCommand,
  leaseStatusCommand,
  leaseLogsCommand,
  leaseCancelCommand,
  leaseFetchCommand,
  fleetSignCommand,
  ...FLEET_COMMANDS,
  earningsCommand,
  settleOnchainCommand,
  settleExportCommand,
  settleVerifyCommand,
  escrowDepositCommand,
  escrowStatusCommand,
  escrowAnnounceWithdrawalCommand,
  escrowWithdrawCommand,
  escrowDeployCommand,
  devnetCommand
]

function usage (commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length), 8)
  return [
    'usage: gpumesh <command> [options]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run "gpumesh <command> --help" for a command\'s options.'
  ].join('\n')
}

/**
 * Runs the command line and returns the exit code. Errors meant for users are printed as sentences;
 * anything unexpected is printed as one sentence too, with the stack only under GPUMESH_DEBUG=1.
 */
export async function main (argv: string[], ctx: CommandContext = processContext()): Promise<number> {
  const commands = COMMANDS
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    ctx.stdout(usage(commands) + '\n')
    return EXIT.OK
  }
  if (argv[0] === '--version') {
    ctx.stdout('gpumesh 0.1.0\n')
    return EXIT.OK
  }
  // Longest match first, so "provider start" wins over a hypothetical "provider".
  const command = commands
    .filter((c) => c.name.split(' ').every((word, i) => argv[i] === word))
    .sort((a, b) => b.name.split(' ').length - a.name.split(' ').length)[0]
  if (command == null) {
    ctx.stderr(`gpumesh: unknown command "${argv.slice(0, 2).join(' ')}". Run "gpumesh --help" for the list of commands.\n`)
    return EXIT.USAGE
  }
  const rest = argv.slice(command.name.split(' ').length)
  if (rest.includes('--help') || rest.includes('-h')) {
    ctx.stdout(`usage: gpumesh ${command.usage}\n\n${command.summary}\n`)
    return EXIT.OK
  }
  try {
    return await command.run(rest, ctx)
  } catch (err) {
    return reportError(err, ctx)
  }
}

/** Prints an error as a sentence; the stack goes to stderr only with GPUMESH_DEBUG=1. */
export function reportError (err: unknown, ctx: CommandContext): number {
  if (err instanceof CliError || isOperatorError(err) || (err as Error)?.name === 'ChainError') {
    ctx.stderr(`gpumesh: ${(err as Error).message}\n`)
  } else if ((err as { code?: string })?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as { code?: string })?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || (err as { code?: string })?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    ctx.stderr(`gpumesh: ${(err as Error).message.split('\n')[0] ?? 'bad option'}. Run with --help for the options.\n`)
    return EXIT.USAGE
  } else {
    ctx.stderr(`gpumesh: ${(err as Error)?.message ?? String(err)}. This is unexpected; run again with GPUMESH_DEBUG=1 for details.\n`)
  }
  if (ctx.env.GPUMESH_DEBUG === '1' && err instanceof Error && err.stack != null) ctx.stderr(err.stack + '\n')
  return err instanceof CliError ? err.exitCode : (err as Error)?.name === 'ConfigError' ? EXIT.USAGE : EXIT.FAILURE
}

function processContext (): CommandContext {
  const controller = new AbortController()
  let signals = 0
  const onSignal = (name: NodeJS.Signals): void => {
    signals++
    if (signals === 1) {
      process.stderr.write(`\ngpumesh: ${name} received, stopping (send it again to force).\n`)
      controller.abort(new CliError('INTERRUPTED', `stopped by ${name}`))
    } else {
      process.exit(130)
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return {
    env: process.env,
    cwd: process.cwd(),
    stdout: (text) => { process.stdout.write(text) },
    stderr: (text) => { process.stderr.write(text) },
    signal: controller.signal,
    interactive: process.stdin.isTTY === true,
    stderrIsTerminal: process.stderr.isTTY === true
  }
}
