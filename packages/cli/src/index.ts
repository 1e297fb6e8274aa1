import { CliError, EXIT } from './errors.js'
import type { Command, CommandContext } from './context.js'

export { CliError, EXIT } from './errors.js'
export type { Command, CommandContext } from './context.js'

/** A row of the command table: the name `main` dispatches on, and how to load the command's module. */
export interface CommandEntry {
  name: string
  load: () => Promise<Command>
}

/**
 * Every subcommand, in the order `gpumesh --help` lists them. A command is a module in `commands/`
 * exporting a `Command`; multi-word commands (`provider start`) are named with a space. Modules are
 * imported on dispatch, so one invocation loads only the packages its command uses (importing them
 * all took seconds on every run).
 */
export const COMMAND_TABLE: readonly CommandEntry[] = [
  { name: 'init', load: async () => (await import('./commands/init.js')).initCommand },
  { name: 'gpus', load: async () => (await import('./commands/gpus.js')).gpusCommand },
  { name: 'provider start', load: async () => (await import('./commands/provider-start.js')).providerStartCommand },
  { name: 'provider status', load: async () => (await import('./commands/provider-status.js')).providerStatusCommand },
  { name: 'leases', load: async () => (await import('./commands/leases.js')).leasesCommand },
  { name: 'matcher start', load: async () => (await import('./commands/matcher-start.js')).matcherStartCommand },
  { name: 'offers', load: async () => (await import('./commands/offers.js')).offersCommand },
  { name: 'quote', load: async () => (await import('./commands/quote.js')).quoteCommand },
  { name: 'lease submit', load: async () => (await import('./commands/lease-submit.js')).leaseSubmitCommand },
  { name: 'lease status', load: async () => (await import('./commands/lease-status.js')).leaseStatusCommand },
  { name: 'lease logs', load: async () => (await import('./commands/lease-logs.js')).leaseLogsCommand },
  { name: 'lease cancel', load: async () => (await import('./commands/lease-cancel.js')).leaseCancelCommand },
  { name: 'lease fetch', load: async () => (await import('./commands/lease-fetch.js')).leaseFetchCommand },
  { name: 'fleet sign', load: async () => (await import('./commands/fleet-sign.js')).fleetSignCommand },
  { name: 'fleet init', load: async () => (await import('./commands/fleet.js')).fleetInitCommand },
  { name: 'fleet add', load: async () => (await import('./commands/fleet.js')).fleetAddCommand },
  { name: 'fleet join', load: async () => (await import('./commands/fleet.js')).fleetJoinCommand },
  { name: 'fleet renew', load: async () => (await import('./commands/fleet.js')).fleetRenewCommand },
  { name: 'fleet revoke', load: async () => (await import('./commands/fleet.js')).fleetRevokeCommand },
  { name: 'fleet status', load: async () => (await import('./commands/fleet.js')).fleetStatusCommand },
  { name: 'fleet settle', load: async () => (await import('./commands/fleet.js')).fleetSettleCommand },
  { name: 'earnings', load: async () => (await import('./commands/settle.js')).earningsCommand },
  { name: 'settle onchain', load: async () => (await import('./commands/settle.js')).settleOnchainCommand },
  { name: 'settle export', load: async () => (await import('./commands/settle.js')).settleExportCommand },
  { name: 'settle verify', load: async () => (await import('./commands/settle.js')).settleVerifyCommand },
  { name: 'escrow deposit', load: async () => (await import('./commands/escrow.js')).escrowDepositCommand },
  { name: 'escrow status', load: async () => (await import('./commands/escrow.js')).escrowStatusCommand },
  { name: 'escrow announce-withdrawal', load: async () => (await import('./commands/escrow.js')).escrowAnnounceWithdrawalCommand },
  { name: 'escrow withdraw', load: async () => (await import('./commands/escrow.js')).escrowWithdrawCommand },
  { name: 'escrow deploy', load: async () => (await import('./commands/escrow.js')).escrowDeployCommand },
  { name: 'devnet', load: async () => (await import('./commands/devnet.js')).devnetCommand }
]

/** Loads a table row's command; its module must name it as the table does. */
export async function loadCommand (entry: CommandEntry): Promise<Command> {
  const command = await entry.load()
  if (command.name !== entry.name) throw new Error(`the command table names "${entry.name}" but its module names "${command.name}"`)
  return command
}

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
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    // The summaries live with the commands: the full list is the one place that loads every module.
    ctx.stdout(usage(await Promise.all(COMMAND_TABLE.map(loadCommand))) + '\n')
    return EXIT.OK
  }
  if (argv[0] === '--version') {
    ctx.stdout('gpumesh 0.1.0\n')
    return EXIT.OK
  }
  // Longest match first, so "provider start" wins over a hypothetical "provider".
  const entry = COMMAND_TABLE
    .filter((c) => c.name.split(' ').every((word, i) => argv[i] === word))
    .sort((a, b) => b.name.split(' ').length - a.name.split(' ').length)[0]
  if (entry == null) {
    ctx.stderr(`gpumesh: unknown command "${argv.slice(0, 2).join(' ')}". Run "gpumesh --help" for the list of commands.\n`)
    return EXIT.USAGE
  }
  const command = await loadCommand(entry)
  const rest = argv.slice(command.name.split(' ').length)
  if (rest.includes('--help') || rest.includes('-h')) {
    ctx.stdout(`usage: gpumesh ${command.usage}\n\n${command.summary}\n`)
    return EXIT.OK
  }
  try {
    return await command.run(rest, ctx)
  } catch (err) {
    return await reportError(err, ctx)
  }
}

const PARSE_ARGS_CODES: ReadonlySet<string> = new Set(['ERR_PARSE_ARGS_UNKNOWN_OPTION', 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE', 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'])

/**
 * Prints an error as a sentence; the stack goes to stderr only with GPUMESH_DEBUG=1. The packages whose
 * error classes are checked are imported here, not at startup: a command that threw one has loaded
 * them already.
 */
export async function reportError (err: unknown, ctx: CommandContext): Promise<number> {
  const code = (err as { code?: unknown })?.code
  if (!(err instanceof CliError) && typeof code === 'string' && PARSE_ARGS_CODES.has(code)) {
    ctx.stderr(`gpumesh: ${(err as Error).message.split('\n')[0] ?? 'bad option'}. Run with --help for the options.\n`)
    return EXIT.USAGE
  }
  let exitCode: number = EXIT.FAILURE
  if (err instanceof CliError) {
    ctx.stderr(`gpumesh: ${err.message}\n`)
    exitCode = err.exitCode
  } else {
    const [{ ConfigError, isOperatorError }, { ChainError }] = await Promise.all([import('@gpumesh/provider'), import('@gpumesh/settlement')])
    if (isOperatorError(err) || err instanceof ChainError) {
      ctx.stderr(`gpumesh: ${(err as Error).message}\n`)
    } else {
      ctx.stderr(`gpumesh: ${(err as Error)?.message ?? String(err)}. This is unexpected; run again with GPUMESH_DEBUG=1 for details.\n`)
    }
    if (err instanceof ConfigError) exitCode = EXIT.USAGE
  }
  if (ctx.env.GPUMESH_DEBUG === '1' && err instanceof Error && err.stack != null) ctx.stderr(err.stack + '\n')
  return exitCode
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
