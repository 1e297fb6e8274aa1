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
  for (const key of ['nvidiaSmi', 'amdSmi', 'rocmSmi', 'sysfsRoot'] as const) {
    const fromEnv = env[ENV_KEYS[key]]?.trim()
    const fromConfig = config?.[key]?.trim()
    const value = fromEnv !== undefined && fromEnv !== '' ? fromEnv : fromConfig !== undefined && fromConfig !== '' ? fromConfig : undefined
    if (value !== undefined) out[key] = value
  }
  return out
}
