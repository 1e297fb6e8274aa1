import { createInterface } from 'node:readline'
import { CliError } from './errors.js'
import type { CommandContext } from './context.js'

/** Reads a password from the terminal without echoing it. */
export async function promptHidden (question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
  const output = rl as unknown as { _writeToOutput: (s: string) => void, output: NodeJS.WritableStream }
  let asked = false
  output._writeToOutput = (s: string) => {
    if (!asked) { output.output.write(s); asked = true }
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve))
  } finally {
    rl.close()
    process.stderr.write('\n')
  }
}

/**
 * The keystore password: GPUMESH_PASSWORD, else asked at the terminal (twice when `confirm`), else a
 * sentence saying how to give it. An empty password is refused unless `allowEmpty`.
 */
export async function obtainPassword (ctx: CommandContext, options: { confirm: boolean, allowEmpty: boolean }): Promise<string> {
  let password = ctx.env.GPUMESH_PASSWORD
  if (password == null) {
    if (!ctx.interactive) {
      throw new CliError('NO_PASSWORD', 'No password for the payment keystore: set GPUMESH_PASSWORD or run in a terminal to be asked.', { exitCode: 2 })
    }
    password = await promptHidden('Password for the payment key: ')
    if (options.confirm && await promptHidden('Repeat the password: ') !== password) {
      throw new CliError('PASSWORD_MISMATCH', 'The two passwords differ; nothing was written. Run the command again.', { exitCode: 2 })
    }
  }
  if (password === '' && !options.allowEmpty) {
    throw new CliError('EMPTY_PASSWORD', 'An empty password would leave the payment key unprotected. Choose a password, or pass --insecure-empty-password if you really mean it.', { exitCode: 2 })
  }
  return password
}
