import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
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

/** The systemd credential (LoadCredential=gpumesh-password:…) read from $CREDENTIALS_DIRECTORY. */
export const PASSWORD_CREDENTIAL = 'gpumesh-password'

/** Variables that hold a secret: the daemon passes none of them on (to jobs, to GPU tools). */
export const SECRET_ENV = ['GPUMESH_PASSWORD'] as const

/**
 * The keystore password, from the first of: GPUMESH_PASSWORD_FILE (a file holding it), the systemd
 * credential `gpumesh-password`, GPUMESH_PASSWORD, a prompt at the terminal (twice when `confirm`).
 * A file keeps the password out of the process's environment, which /proc/<pid>/environ shows to
 * every process of the same user. One trailing newline of a file is dropped. An empty password is
 * refused unless `allowEmpty`.
 */
export async function obtainPassword (ctx: CommandContext, options: { confirm: boolean, allowEmpty: boolean }): Promise<string> {
  let password = await passwordFromFile(ctx) ?? ctx.env.GPUMESH_PASSWORD
  if (password == null) {
    if (!ctx.interactive) {
      throw new CliError('NO_PASSWORD', 'No password for the payment keystore: set GPUMESH_PASSWORD_FILE to a file holding it (or GPUMESH_PASSWORD), or run in a terminal to be asked.', { exitCode: 2 })
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

async function passwordFromFile (ctx: CommandContext): Promise<string | null> {
  const file = ctx.env.GPUMESH_PASSWORD_FILE
  const credentials = ctx.env.CREDENTIALS_DIRECTORY
  const [path, source] = file != null && file !== ''
    ? [file, 'GPUMESH_PASSWORD_FILE']
    : credentials != null && credentials !== '' ? [join(credentials, PASSWORD_CREDENTIAL), 'the systemd credential'] : [null, '']
  if (path == null) return null
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '')
  } catch (err) {
    // Without a credential file, systemd's directory is no reason to fail: fall through to the others.
    if (source !== 'GPUMESH_PASSWORD_FILE' && (err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new CliError('NO_PASSWORD', `Cannot read the password from ${path} (${source}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}. Check the path and that this user may read it.`, { exitCode: 2, cause: err })
  }
}

/** The environment without secrets, for what the daemon hands on. */
export function withoutSecrets (env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out = { ...env }
  for (const name of SECRET_ENV) delete out[name]
  return out
}
