import { userInfo } from 'node:os'
import { DEFAULT_MAX_TEMPERATURE_C, DEFAULT_PROBE_TIMEOUT_MS, GPU_TOOL_SOURCES } from './constants.js'
import { probeAmd } from './amd-probe.js'
import { loadGpuClasses, specOf, UNKNOWN_CLASS, type GpuClassTable } from './gpu-classes.js'
import { judgeGpu } from './health.js'
import { HostFacts, minimalHost } from './host-info.js'
import { probeNvidia, type ToolProbe } from './nvidia-probe.js'
import { probePciFallback } from './pci-fallback.js'
import { simulatedGpus } from './simulate.js'
import type { GpuInfo, HostInfo, ProbeIssue, ProbeOptions, ProbeResult, RawGpu } from './types.js'

export const VANISHED_PROBLEM = 'vanished since the last probe'

/**
 * Finds the GPUs of this machine and judges them. Each `probe()` runs the vendor tools (never
 * blocking the event loop, each bounded by `timeoutMs`) and remembers its result, so a GPU seen
 * before and missing now is reported as vanished. The constructor does no I/O.
 */
export class GpuProber {
  private readonly options: ProbeOptions
  private readonly timeoutMs: number
  private readonly maxTemperatureC: number
  private readonly rejectedFields = new Set<string>()
  private readonly hostFacts = new HostFacts()
  private classes: Promise<GpuClassTable> | undefined
  private previous: ProbeResult | undefined

  constructor (options: ProbeOptions) {
    this.options = options
    this.timeoutMs = options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS
    this.maxTemperatureC = options.maxTemperatureC ?? DEFAULT_MAX_TEMPERATURE_C
  }

  /** The result of the last probe, if any. */
  get lastResult (): ProbeResult | undefined {
    return this.previous
  }

  async probe (opts: { signal?: AbortSignal } = {}): Promise<ProbeResult> {
    const { signal } = opts
    const log = this.options.logger
    const errors: ProbeIssue[] = []

    const classesP = this.loadClasses().catch((err: Error) => {
      this.classes = undefined
      errors.push({ source: 'gpu-classes', code: 'CLASSES_UNAVAILABLE', message: err.message })
      return null
    })
    const hostP: Promise<HostInfo> = this.options.hostFacts === false
      ? Promise.resolve(minimalHost(this.options.dataDir))
      : this.hostFacts.read(this.options.dataDir).catch((err: Error) => {
        errors.push({ source: 'host', code: 'HOST_FACTS_FAILED', message: `host facts could not be read: ${err.message}` })
        return minimalHost(this.options.dataDir)
      })
    const [nvidia, amd] = await Promise.all([
      probeNvidia({
        file: this.options.nvidiaSmi ?? 'nvidia-smi',
        explicit: this.options.nvidiaSmi !== undefined,
        timeoutMs: this.timeoutMs,
        signal,
        env: this.options.toolEnv,
        rejectedFields: this.rejectedFields,
        logger: log
      }),
      probeAmd({
        amdSmi: { file: this.options.amdSmi ?? 'amd-smi', explicit: this.options.amdSmi !== undefined },
        rocmSmi: { file: this.options.rocmSmi ?? 'rocm-smi', explicit: this.options.rocmSmi !== undefined },
        timeoutMs: this.timeoutMs,
        signal,
        env: this.options.toolEnv,
        sysfsRoot: this.options.sysfsRoot,
        procRoot: this.options.procRoot,
        uid: this.options.uid ?? currentUid(),
        logger: log
      })
    ])
    const raw: RawGpu[] = []
    for (const t of [nvidia, amd] satisfies ToolProbe[]) {
      raw.push(...t.gpus)
      errors.push(...t.issues)
    }
    if (!nvidia.found && !amd.found && this.options.systemInformationFallback !== false) {
      try {
        raw.push(...await probePciFallback())
      } catch (err) {
        log?.debug({ err: (err as Error).message }, 'systeminformation found no GPUs')
      }
    }
    const classes = await classesP
    const simulate = this.options.simulate ?? []
    if (simulate.length > 0) {
      const next = raw.reduce((m, g) => Math.max(m, (g.index ?? -1) + 1), 0)
      raw.push(...simulatedGpus(simulate, classes, next))
    }

    const leased = this.options.leasedPids?.() ?? new Set<number>()
    const gpus: GpuInfo[] = raw.map((g) => {
      const c = classes?.classify(g.name, g.memoryTotalMiB, [g.pciDeviceId]) ?? classes?.lookup(g.name)
      return {
        ...g,
        class: c?.class ?? UNKNOWN_CLASS,
        spec: specOf(c),
        ...judgeGpu(g, { maxTemperatureC: this.maxTemperatureC, leasedPids: leased, allowUnknownHealth: this.options.allowUnknownHealth }),
        simulated: g.source === 'simulation'
      }
    })
    const seen = new Set(gpus.map((g) => g.uuid))
    for (const old of this.previous?.gpus ?? []) {
      if (old.simulated || seen.has(old.uuid)) continue
      gpus.push(vanished(old))
    }

    const result: ProbeResult = { host: await hostP, gpus, errors, probedAt: Date.now() }
    this.previous = result
    for (const e of errors) log?.warn({ source: e.source, code: e.code }, e.message)
    for (const g of gpus) {
      if (!g.healthy || g.busy) log?.debug({ uuid: g.uuid, simulated: g.simulated, problems: g.problems }, 'GPU not offerable')
    }
    const simulatedCount = gpus.filter((g) => g.simulated).length
    log?.debug({ gpus: gpus.length, simulated: simulatedCount > 0, simulatedGpus: simulatedCount }, 'probed GPUs')
    return result
  }

  private async loadClasses (): Promise<GpuClassTable> {
    this.classes ??= loadGpuClasses(this.options.gpuClassesFile)
    return await this.classes
  }
}

function vanished (old: GpuInfo): GpuInfo {
  return {
    ...old,
    memoryUsedMiB: null,
    utilizationPercent: null,
    temperatureC: null,
    powerDrawW: null,
    processes: [],
    healthy: false,
    busy: false,
    problems: old.problems.includes(VANISHED_PROBLEM) ? old.problems : [VANISHED_PROBLEM]
  }
}

/** The user id this process runs as, or null where the platform has none. */
function currentUid (): number | null {
  try {
    const uid = userInfo().uid
    return uid >= 0 ? uid : null
  } catch {
    return null
  }
}

/** True when a GPU tool exists but failed (the CLI's exit code 3). */
export function hasToolFailure (result: Pick<ProbeResult, 'errors'>): boolean {
  return result.errors.some((e) => GPU_TOOL_SOURCES.has(e.source) && e.code !== 'TOOL_NOT_FOUND')
}

/**
 * The GPU tools named by a setting (config or environment) that do not exist or cannot be run: a
 * configuration error (the CLI's exit code 2), not a failing tool. A tool looked up on PATH and absent
 * is no issue at all.
 */
export function missingTools (result: Pick<ProbeResult, 'errors'>): ProbeIssue[] {
  return result.errors.filter((e) => GPU_TOOL_SOURCES.has(e.source) && e.code === 'TOOL_NOT_FOUND')
}

/** The GPUs that may be offered: healthy, not busy. */
export function offerableGpus (result: Pick<ProbeResult, 'gpus'>): GpuInfo[] {
  return result.gpus.filter((g) => g.healthy && !g.busy)
}
