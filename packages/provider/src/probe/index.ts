export { GpuProber, hasToolFailure, missingTools, offerableGpus, VANISHED_PROBLEM } from './gpu-prober.js'
export { probeToolSetting, resolveProbeExecutables, type ProbeExecutables, type ProbeExecutablesConfig } from './executables.js'
export { loadGpuClasses, parseGpuClasses, GpuClassTable, DEFAULT_GPU_CLASSES_FILE, UNKNOWN_CLASS } from './gpu-classes.js'
export { GpuSampler, type GpuSamplerOptions, type ReadGpus, type SamplerGpu } from './gpu-sampler.js'
export { parseNvidiaQuery, parseNvidiaList, parseComputeApps, parseRemappedRows, parseInvalidFields, parseNvidiaReadings } from './nvidia-smi.js'
export {
  parseAmdSmi, parseAmdSmiReadings, parseAmdSmiProcesses, parseRocmSmi, parseRocmSmiPids, parseJsonAfterBanner,
  normalizeAmdSerial, normalizeBusId, normalizeGfxTarget
} from './amd-smi.js'
export { judgeGpu, type HealthOptions, type HealthVerdict } from './health.js'
export { readKfdProcesses, type KfdProcesses, type KfdReadOptions } from './kfd.js'
export { runTool, type RunToolOptions, type ToolOutput } from './run-tool.js'
export { ProbeToolError, GpuClassesError } from './errors.js'
export { DEFAULT_PROBE_TIMEOUT_MS, DEFAULT_MAX_TEMPERATURE_C, DEFAULT_SAMPLE_CACHE_MS, DEFAULT_SAMPLE_TIMEOUT_MS, NVIDIA_QUERY_FIELDS, NVIDIA_SAMPLE_FIELDS } from './constants.js'
export type {
  GpuInfo, GpuClassSpec, GpuReading, GpuProcess, GpuSource, GpuVendor, HostInfo, MigDevice, ProbeIssue, ProbeIssueCode,
  ProbeLogger, ProbeOptions, ProbeResult, RawGpu, SimulatedGpuSpec
} from './types.js'
