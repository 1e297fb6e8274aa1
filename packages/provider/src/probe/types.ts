/** Who made the GPU. */
export type GpuVendor = 'nvidia' | 'amd' | 'unknown'

/** Which tool reported a GPU. */
export type GpuSource = 'nvidia-smi' | 'amd-smi' | 'rocm-smi' | 'systeminformation' | 'simulation'

/** One row of config/gpu-classes.json: a model class and its datasheet figures. */
export interface GpuClassSpec {
  class: string
  vendor: GpuVendor
  displayName: string
  /** Case-insensitive regular expressions tried on the reported name. */
  match: string[]
  minMemoryMiB?: number | undefined
  maxMemoryMiB?: number | undefined
  /** CUDA compute capability (`9.0`); null for AMD. Used for simulated GPUs only: real ones report their own. */
  computeCapability?: string | null | undefined
  /** Peak dense BF16 (FP16 where the part lacks BF16) tensor TFLOPS. */
  bf16Tflops: number
  fp32Tflops: number
  memoryGiB: number
  /** Total memory as the vendor tool reports it. */
  memoryMiB: number
  bandwidthGBs: number
  tdpW: number
}

/** A MIG instance of an NVIDIA GPU, as listed by `nvidia-smi -L`. */
export interface MigDevice {
  uuid: string
  /** Profile such as `1g.10gb`. */
  profile: string | null
  index: number | null
}

/** A process using a GPU, from `nvidia-smi --query-compute-apps`. */
export interface GpuProcess {
  pid: number
  /** null when nvidia-smi prints `[Not Found]` (another PID namespace). */
  name: string | null
  usedMemoryMiB: number | null
}

/** What a vendor tool says about one GPU, before classing and health. Unknown values are null. */
export interface RawGpu {
  uuid: string
  index: number | null
  vendor: GpuVendor
  name: string
  source: GpuSource
  pciBusId: string | null
  memoryTotalMiB: number | null
  memoryUsedMiB: number | null
  utilizationPercent: number | null
  temperatureC: number | null
  powerDrawW: number | null
  powerLimitW: number | null
  computeCapability: string | null
  driverVersion: string | null
  migEnabled: boolean | null
  migDevices: MigDevice[]
  eccErrors: { corrected: number | null, uncorrected: number | null }
  retiredPagesPending: boolean | null
  rowRemapPending: boolean | null
  rowRemapFailure: boolean | null
  processes: GpuProcess[]
  /** PCI vendor and device id (`1002:740f`) where the tool says; class rows may match it. */
  pciDeviceId?: string | null | undefined
  /** Why the GPU's health (temperature, ECC) could not be read; such a GPU is not offered unless allowed. */
  healthUnreadable?: string | null | undefined
  /** Why the processes using the GPU could not be listed; such a GPU counts as busy. */
  processesUnreadable?: string | null | undefined
}

/** What only a vendor tool can read about a GPU. */
export type ToolReadings = Pick<RawGpu,
  'temperatureC' | 'powerDrawW' | 'powerLimitW' | 'computeCapability' | 'driverVersion' | 'migEnabled' | 'migDevices' |
  'eccErrors' | 'retiredPagesPending' | 'rowRemapPending' | 'rowRemapFailure' | 'processes'>

/** The readings of a GPU no vendor tool measured (made up by `probe.simulate`, or seen only on the PCI bus): all unknown. */
export function unmeasuredReadings (): ToolReadings {
  return {
    temperatureC: null,
    powerDrawW: null,
    powerLimitW: null,
    computeCapability: null,
    driverVersion: null,
    migEnabled: null,
    migDevices: [],
    eccErrors: { corrected: null, uncorrected: null },
    retiredPagesPending: null,
    rowRemapPending: null,
    rowRemapFailure: null,
    processes: []
  }
}

/** One GPU as the provider sees it. Only `healthy && !busy` GPUs may be offered. */
export interface GpuInfo extends RawGpu {
  /** Model class from config/gpu-classes.json, or `unknown`. */
  class: string
  spec: Omit<GpuClassSpec, 'match' | 'minMemoryMiB' | 'maxMemoryMiB'> | null
  healthy: boolean
  /** Used by a process that is not a gpumesh lease. */
  busy: boolean
  /** Why the GPU is unhealthy or busy; empty when it can be offered. */
  problems: string[]
  /** True for GPUs made up by `probe.simulate`; never hidden. */
  simulated: boolean
}

/** Facts about the machine. Unknown values are null. */
export interface HostInfo {
  hostname: string
  os: { platform: string, distro: string | null, release: string | null, kernel: string | null, arch: string }
  cpu: { model: string | null, cores: number | null, physicalCores: number | null }
  memoryTotalMiB: number | null
  memoryAvailableMiB: number | null
  dataDir: string
  diskFreeMiB: number | null
}

export type ProbeIssueCode =
  | 'TOOL_NOT_FOUND'
  | 'TOOL_TIMEOUT'
  | 'TOOL_FAILED'
  | 'DRIVER_NOT_LOADED'
  | 'DRIVER_MISMATCH'
  | 'BAD_OUTPUT'
  | 'NO_PERMISSION'
  | 'PROCESSES_HIDDEN'
  | 'GPU_LOST'
  | 'ABORTED'
  | 'CLASSES_UNAVAILABLE'
  | 'HOST_FACTS_FAILED'

/** Something that went wrong while probing, in plain words. */
export interface ProbeIssue {
  /** `nvidia-smi`, `amd-smi`, `rocm-smi`, `systeminformation`, `gpu-classes` or `host`. */
  source: string
  code: ProbeIssueCode
  message: string
}

export interface ProbeResult {
  host: HostInfo
  gpus: GpuInfo[]
  errors: ProbeIssue[]
  /** Epoch milliseconds when the probe finished. */
  probedAt: number
}

/** One live reading of one GPU for metering; null where the tool does not say. */
export interface GpuReading {
  uuid: string
  utilizationPercent: number | null
  memoryUsedMiB: number | null
  powerDrawW: number | null
}

/** A pino-compatible logger; only these methods are used. */
export interface ProbeLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
}

export interface SimulatedGpuSpec {
  /** A class name (`H100-SXM-80GB`) or a reported name (`NVIDIA H100 80GB HBM3`). */
  model: string
  count: number
}

export interface ProbeOptions {
  /** Path of nvidia-smi; default: `nvidia-smi` found on PATH by the OS. */
  nvidiaSmi?: string | undefined
  amdSmi?: string | undefined
  rocmSmi?: string | undefined
  /** Per tool invocation. Default 10 000. */
  timeoutMs?: number | undefined
  /** At or above this a GPU is unhealthy. Default 90. */
  maxTemperatureC?: number | undefined
  /** Offer a GPU whose health (temperature, ECC) cannot be read. Default false: such a GPU is unhealthy. */
  allowUnknownHealth?: boolean | undefined
  /** Made-up GPUs for machines without any; labelled `simulated: true`. Default none. */
  simulate?: SimulatedGpuSpec[] | undefined
  /** Directory whose free disk space is reported. */
  dataDir: string
  /** PIDs of gpumesh lease processes: their GPU use does not make a GPU busy. */
  leasedPids?: (() => Set<number>) | undefined
  /** Ask systeminformation (lspci) when no vendor tool exists. Default true. */
  systemInformationFallback?: boolean | undefined
  /** Override the class table location; default `<repo>/config/gpu-classes.json`. */
  gpuClassesFile?: string | URL | undefined
  /** Collect host facts. Default true. */
  hostFacts?: boolean | undefined
  /** Environment for the GPU tools; default the parent's. */
  toolEnv?: Record<string, string | undefined> | undefined
  /** Where sysfs is mounted: the KFD's process list is `<sysfsRoot>/class/kfd/kfd/proc`. Default `/sys`. */
  sysfsRoot?: string | undefined
  /** Where procfs is mounted (process names). Default `/proc`. */
  procRoot?: string | undefined
  /** The user id the probe runs as (root sees every process in amd-smi); default the current user's. */
  uid?: number | undefined
  logger?: ProbeLogger | undefined
}
