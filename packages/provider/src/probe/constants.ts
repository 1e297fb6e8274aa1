export const DEFAULT_PROBE_TIMEOUT_MS = 10_000
export const DEFAULT_MAX_TEMPERATURE_C = 90
/** Largest stdout/stderr kept from one tool run. */
export const MAX_TOOL_OUTPUT_BYTES = 4 * 1024 * 1024

/**
 * Fields asked of `nvidia-smi --query-gpu`. Parsing is by name, so the order is free; it is the
 * common capture layout (the one GPU-FACTS lists and the shared captures use), so that a capture
 * replayed as is by a stand-in nvidia-smi lines up with what was asked.
 */
export const NVIDIA_QUERY_FIELDS = [
  'index', 'uuid', 'name', 'pci.bus_id', 'driver_version', 'compute_cap',
  'memory.total', 'memory.used', 'memory.free', 'utilization.gpu', 'utilization.memory',
  'temperature.gpu', 'temperature.memory', 'power.draw', 'power.limit', 'clocks.sm', 'clocks.max.sm',
  'fan.speed', 'pstate', 'persistence_mode', 'mig.mode.current', 'ecc.mode.current',
  'ecc.errors.corrected.volatile.total', 'ecc.errors.uncorrected.volatile.total'
] as const

/** Retired pages (pre-Ampere ECC health), asked separately so the main query keeps the common layout. */
export const NVIDIA_RETIRED_FIELDS = ['uuid', 'retired_pages.pending'] as const

/** Fields nvidia-smi must answer; others may be dropped when an old driver rejects them. */
export const NVIDIA_REQUIRED_FIELDS: readonly string[] = ['index', 'uuid', 'name']

export const NVIDIA_APPS_FIELDS = ['gpu_uuid', 'pid', 'process_name', 'used_gpu_memory'] as const
export const NVIDIA_REMAP_FIELDS = ['gpu_uuid', 'remapped_rows.pending', 'remapped_rows.failure'] as const

export const AMD_SMI_ARGS = ['static', '--asic', '--vram', '--bus', '--limit', '--driver', '--json'] as const
export const AMD_SMI_METRIC_ARGS = ['metric', '--usage', '--temperature', '--power', '--mem-usage', '--ecc', '--json'] as const
export const AMD_SMI_PROCESS_ARGS = ['process', '--json'] as const
export const ROCM_SMI_ARGS = [
  '--showproductname', '--showmeminfo', 'vram', '--showuniqueid', '--showbus', '--showtemp', '--showuse',
  '--showpower', '--showmaxpower', '--showdriverversion', '--json'
] as const
/** Text only: with --json these options print nothing. */
export const ROCM_SMI_PIDS_ARGS = ['--showpids', '--showpidgpus'] as const

/** Sources whose issues mean a GPU tool exists but failed. */
export const GPU_TOOL_SOURCES: ReadonlySet<string> = new Set(['nvidia-smi', 'amd-smi', 'rocm-smi'])

/** The light query the GPU sampler runs once per metering tick. */
export const NVIDIA_SAMPLE_FIELDS = ['uuid', 'utilization.gpu', 'memory.used', 'power.draw'] as const
export const AMD_SMI_SAMPLE_ARGS = ['metric', '--usage', '--power', '--mem-usage', '--json'] as const
export const ROCM_SMI_SAMPLE_ARGS = ['--showuniqueid', '--showbus', '--showuse', '--showpower', '--showmeminfo', 'vram', '--json'] as const
/** A sampler tool run longer than this gives null readings for the tick (meter ticks are at most 5 s apart). */
export const DEFAULT_SAMPLE_TIMEOUT_MS = 3_000
/** One tool answer serves every lease sampling within this window. */
export const DEFAULT_SAMPLE_CACHE_MS = 500
/** After failures the tool is asked again no sooner than this (doubling from the cache window). */
export const MAX_SAMPLE_BACKOFF_MS = 30_000
