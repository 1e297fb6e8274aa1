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

/**
 * Written by `matcher start`: the running matcher's peer id and addresses, for `gpumesh offers`, the
 * lease commands and scripts (here, not in the matcher's command, so reading it loads no matcher).
 */
export const MATCHER_INFO_FILE = 'matcher.json'
