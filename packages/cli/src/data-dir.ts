import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import type { CommandContext } from './context.js'

/** `--data-dir`, else `$GPUMESH_HOME`, else `~/.gpumesh`. */
export function resolveDataDir (flag: string | undefined, ctx: CommandContext): string {
  const chosen = flag ?? ctx.env.GPUMESH_HOME
  if (chosen == null || chosen === '') return join(homedir(), '.gpumesh')
  const expanded = chosen.startsWith('~/') ? join(homedir(), chosen.slice(2)) : chosen
  return isAbsolute(expanded) ? expanded : resolve(ctx.cwd, expanded)
}
