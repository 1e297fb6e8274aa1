/** Explicit paths of the GPU tools; an absent one is looked up on PATH when the tool is run. */
export interface ProbeExecutables {
  nvidiaSmi?: string | undefined
  amdSmi?: string | undefined
  rocmSmi?: string | undefined
  /** Where sysfs is mounted (the KFD process list); default `/sys`. */
  sysfsRoot?: string | undefined
}

/** The `probe` config keys that name executables. */
export interface ProbeExecutablesConfig {
  nvidiaSmi?: string | null | undefined
  amdSmi?: string | null | undefined
  rocmSmi?: string | null | undefined
  sysfsRoot?: string | null | undefined
}

const ENV_KEYS = {
  nvidiaSmi: 'GPUMESH_NVIDIA_SMI',
  amdSmi: 'GPUMESH_AMD_SMI',
  rocmSmi: 'GPUMESH_ROCM_SMI',
  sysfsRoot: 'GPUMESH_SYSFS_ROOT'
} as const

/**
 * Which GPU tools to run: `GPUMESH_NVIDIA_SMI`, `GPUMESH_AMD_SMI`, `GPUMESH_ROCM_SMI` win over the config
 * keys `probe.nvidiaSmi`, `probe.amdSmi`, `probe.rocmSmi`; `GPUMESH_SYSFS_ROOT` over `probe.sysfsRoot` (where
 * the KFD process list is read). Empty values count as unset.
 */
export function resolveProbeExecutables (config: ProbeExecutablesConfig | undefined, env: Record<string, string | undefined>): ProbeExecutables {
  const out: ProbeExecutables = {}
  for (const key of PATH_KEYS) {
    const named = namedTool(key, config, env)
    if (named != null) out[key] = named.path
  }
  return out
}

const TOOL_KEYS = ['nvidiaSmi', 'amdSmi', 'rocmSmi'] as const
const PATH_KEYS = [...TOOL_KEYS, 'sysfsRoot'] as const

/** The tool each key names, as a probe issue's `source` gives it. */
const TOOL_OF: Record<typeof TOOL_KEYS[number], string> = { nvidiaSmi: 'nvidia-smi', amdSmi: 'amd-smi', rocmSmi: 'rocm-smi' }

/**
 * The setting that named `tool`'s path (`GPUMESH_NVIDIA_SMI` or `probe.nvidiaSmi`, by the same
 * precedence as resolveProbeExecutables) and the path, or null when the tool is looked up on PATH.
 */
export function probeToolSetting (tool: string, config: ProbeExecutablesConfig | undefined, env: Record<string, string | undefined>): { setting: string, path: string } | null {
  const key = TOOL_KEYS.find((k) => TOOL_OF[k] === tool)
  return key == null ? null : namedTool(key, config, env)
}

function namedTool (key: typeof PATH_KEYS[number], config: ProbeExecutablesConfig | undefined, env: Record<string, string | undefined>): { setting: string, path: string } | null {
  const fromEnv = env[ENV_KEYS[key]]?.trim()
  if (fromEnv !== undefined && fromEnv !== '') return { setting: ENV_KEYS[key], path: fromEnv }
  const fromConfig = config?.[key]?.trim()
  if (fromConfig !== undefined && fromConfig !== '') return { setting: `probe.${key}`, path: fromConfig }
  return null
}
