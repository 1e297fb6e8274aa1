/**
 * The `gpumesh` command. Returns the process exit code; the binary in `bin/` sets it.
 */
export async function main (argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log('usage: gpumesh <command> [options]')
    return 0
  }
  console.error(`gpumesh: unknown command "${argv[0]}". Run "gpumesh --help" for the list of commands.`)
  return 2
}
