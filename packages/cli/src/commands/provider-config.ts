import { isAbsolute, join, resolve } from 'node:path'
import { configFromEnv, parseProviderConfig, readConfigFile, type ConfigLayer, type ProviderConfig } from '@gpumesh/provider'
import { resolveDataDir } from '../data-dir.js'
import { CONFIG_FILE } from '../identity.js'
import type { CommandContext } from '../context.js'

/** The provider's configuration from its layers: defaults ← config file ← GPUMESH_* ← flags. */
export async function loadProviderConfig (ctx: CommandContext, flags: { config?: string | undefined, dataDir?: string | undefined, layer?: ConfigLayer }): Promise<ProviderConfig> {
  const dataDir = resolveDataDir(flags.dataDir, ctx)
  const configPath = flags.config != null ? (isAbsolute(flags.config) ? flags.config : resolve(ctx.cwd, flags.config)) : join(dataDir, CONFIG_FILE)
  const fileLayer = await readConfigFile(configPath, { optional: flags.config == null })
  const flagLayer: ConfigLayer = { ...(flags.layer ?? {}) }
  if (flags.dataDir != null) flagLayer.dataDir = dataDir
  return parseProviderConfig({ dataDir }, fileLayer, configFromEnv(ctx.env), flagLayer)
}
