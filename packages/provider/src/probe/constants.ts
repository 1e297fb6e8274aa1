export const DEFAULT_PROBE_TIMEOUT_MS = 10_000
export const DEFAULT_MAX_TEMPERATURE_C = 90
/** Largest stdout/stderr kept from one tool run. */
export const MAX_TOOL_OUTPUT_BYTES = 4 * 1024 * 1024

/** Fields asked of `nvidia-smi --query-gpu`. Parsing is by name, so the order is free. */
export const NVIDIA_QUERY_FIELDS = [
  'index', 'uuid', 'name', 'pci.bus_id', 'driver_version', 'compute_cap',
  'memory.total', 'memory.used', 'utilization.gpu', 'temperature.gpu', 'power.draw', 'power.limit',
  'mig.mode.current', 'ecc.mode.current',
  'ecc.errors.corrected.volatile.total', 'ecc.errors.uncorrected.volatile.total',
  'retired_pages.pending'
] as const

/** Fields nvidia-smi must answer; others may be dropped when an old driver rejects them. */
export const NVIDIA_REQUIRED_FIELDS: readonly string[] = ['index', 'uuid', 'name']

export const NVIDIA_APPS_FIELDS = ['gpu_uuid', 'pid', 'process_name', 'used_gpu_memory'] as const
export const NVIDIA_REMAP_FIELDS = ['gpu_uuid', 'remapped_rows.pending', 'remapped_rows.failure'] as const

export const AMD_SMI_ARGS = ['static', '--asic', '--vram', '--bus', '--json'] as const
export const AMD_SMI_METRIC_ARGS = ['metric', '--usage', '--temperature', '--power', '--mem-usage', '--ecc', '--json'] as const
export const ROCM_SMI_ARGS = [
  '--showproductname', '--showmeminfo', 'vram', '--showuniqueid', '--showbus', '--showtemp', '--showuse',
  '--showpower', '--json'
] as const

/** Sources whose issues mean a GPU tool exists but failed. */
export const GPU_TOOL_SOURCES: ReadonlySet<string> = new Set(['nvidia-smi', 'amd-smi', 'rocm-smi'])
