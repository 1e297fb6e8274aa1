// Live GPU readings for metering: one light tool run per tick, shared by every lease.
import { parseAmdSmiReadings, parseRocmSmi } from './amd-smi.js'
import {
  AMD_SMI_SAMPLE_ARGS, DEFAULT_SAMPLE_CACHE_MS, DEFAULT_SAMPLE_TIMEOUT_MS, MAX_SAMPLE_BACKOFF_MS, NVIDIA_SAMPLE_FIELDS,
  ROCM_SMI_SAMPLE_ARGS
} from './constants.js'
import { ProbeToolError } from './errors.js'
import { firstLine, quote } from './nvidia-probe.js'
import { parseNvidiaReadings } from './nvidia-smi.js'
import { runTool, type ToolOutput } from './run-tool.js'
import type { GpuReading, GpuVendor, ProbeLogger } from './types.js'

/** Reads GPUs now, by UUID; one reading per UUID asked, in the same order. */
export type ReadGpus = (uuids: readonly string[]) => Promise<GpuReading[]>

/** What the sampler needs to know of a GPU: the probe's view (an `InventoryGpu` fits). */
export interface SamplerGpu {
  uuid: string
  index: number | null
  vendor: GpuVendor
  simulated: boolean
}

export interface GpuSamplerOptions {
  /** Paths of the tools, as for `GpuProber`; absent ones are found on PATH. */
  nvidiaSmi?: string | undefined
  amdSmi?: string | undefined
  rocmSmi?: string | undefined
  /** Per tool run. Default `DEFAULT_SAMPLE_TIMEOUT_MS` (3 s). */
  timeoutMs?: number | undefined
  /** One answer serves all calls within this window. Default `DEFAULT_SAMPLE_CACHE_MS` (500 ms). */
  cacheMs?: number | undefined
  toolEnv?: Record<string, string | undefined> | undefined
  /** The probed GPUs (vendor, index, simulated). Unknown UUIDs are judged by prefix: `GPU-sim-`, `GPU-`, `AMD-`. */
  gpus?: (() => Iterable<SamplerGpu>) | undefined
  /** Readings for simulated GPUs (synthetic); default null readings. Never used for real GPUs. */
  simulated?: ReadGpus | undefined
  /** Monotonic milliseconds; default `performance.now`. */
  now?: (() => number) | undefined
  logger?: ProbeLogger | undefined
}

type Readings = Map<string, GpuReading>

/**
 * Live utilisation, memory and power per GPU for the meter (`SampleGpus`). For NVIDIA it runs one
 * `nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,power.draw` per tick; for AMD
 * `amd-smi metric --usage --power --mem-usage --json`, else `rocm-smi … --json`. Every lease shares that
 * run: concurrent calls wait on the same child, and its answer is reused for `cacheMs`. Simulated GPUs
 * get `options.simulated`. A tool that fails or hangs gives null readings (billing never depends on them),
 * is logged once per failure streak, and is asked again after a backoff that doubles up to 30 s, so a hung
 * driver does not collect a stuck child per tick. `sample` never rejects. The constructor does no I/O.
 */
export class GpuSampler {
  readonly #o: GpuSamplerOptions
  readonly #now: () => number
  readonly #nvidia: SharedReading
  readonly #amd: SharedReading
  #amdSmiMissing = false

  constructor (options: GpuSamplerOptions = {}) {
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
    const shared = { now: this.#now, cacheMs: options.cacheMs ?? DEFAULT_SAMPLE_CACHE_MS, logger: options.logger }
    this.#nvidia = new SharedReading('nvidia-smi', async () => await this.#readNvidia(), shared)
    this.#amd = new SharedReading('amd-smi', async () => await this.#readAmd(), shared)
  }

  /** Readings for `uuids`, in order; a `SampleGpus` for the JobManager. */
  readonly sample: ReadGpus = async (uuids) => {
    const known = new Map<string, SamplerGpu>()
    for (const g of this.#gpus()) known.set(g.uuid, g)
    const kind = (uuid: string): 'simulated' | GpuVendor => {
      const g = known.get(uuid)
      if (g != null) return g.simulated ? 'simulated' : g.vendor
      if (uuid.startsWith('GPU-sim-')) return 'simulated'
      if (uuid.startsWith('GPU-')) return 'nvidia'
      if (uuid.startsWith('AMD-')) return 'amd'
      return 'unknown'
    }
    const groups = { simulated: [] as string[], nvidia: [] as string[], amd: [] as string[] }
    for (const uuid of uuids) {
      const k = kind(uuid)
      if (k !== 'unknown') groups[k].push(uuid)
    }
    const [sim, nvidia, amd] = await Promise.all([
      groups.simulated.length > 0 ? this.#simulated(groups.simulated) : new Map<string, GpuReading>(),
      groups.nvidia.length > 0 ? this.#nvidia.get() : null,
      groups.amd.length > 0 ? this.#amd.get() : null
    ])
    return uuids.map((uuid) => sim.get(uuid) ?? nvidia?.get(uuid) ?? amd?.get(uuid) ?? nullReading(uuid))
  }

  /** The probe's view; empty when it cannot be read (then UUID prefixes decide). */
  #gpus (): SamplerGpu[] {
    try {
      return [...(this.#o.gpus?.() ?? [])]
    } catch (err) {
      this.#o.logger?.debug({ err: (err as Error).message }, 'the probed GPUs could not be read')
      return []
    }
  }

  async #simulated (uuids: string[]): Promise<Readings> {
    const out: Readings = new Map()
    if (this.#o.simulated == null) return out
    try {
      for (const r of await this.#o.simulated(uuids)) out.set(r.uuid, r)
    } catch (err) {
      this.#o.logger?.debug({ err: (err as Error).message }, 'simulated GPU readings failed')
    }
    return out
  }

  async #run (file: string, args: readonly string[], label: string): Promise<ToolOutput> {
    return await runTool(file, args, { timeoutMs: this.#o.timeoutMs ?? DEFAULT_SAMPLE_TIMEOUT_MS, env: this.#o.toolEnv, label })
  }

  async #readNvidia (): Promise<Readings> {
    const out = await this.#run(this.#o.nvidiaSmi ?? 'nvidia-smi', [`--query-gpu=${NVIDIA_SAMPLE_FIELDS.join(',')}`, '--format=csv,noheader,nounits'], 'nvidia-smi')
    const said = firstLine(out.stderr) ?? firstLine(out.stdout)
    if (out.exitCode === 6 && /No devices were found/i.test(out.stdout + out.stderr)) return new Map()
    const { readings } = parseNvidiaReadings(out.stdout)
    // A GPU lost from the bus makes nvidia-smi exit non-zero after the rows of the others: keep those.
    if (out.exitCode !== 0 && readings.size === 0) {
      const code = out.exitCode === 9 ? 'DRIVER_NOT_LOADED' : out.exitCode === 18 ? 'DRIVER_MISMATCH' : 'TOOL_FAILED'
      throw new ProbeToolError('nvidia-smi', code, `nvidia-smi failed (exit ${out.exitCode ?? 'by signal'}${quote(said)})`, { exitCode: out.exitCode })
    }
    if (readings.size === 0 && out.stdout.trim() !== '') {
      throw new ProbeToolError('nvidia-smi', 'BAD_OUTPUT', `nvidia-smi printed no GPU reading${quote(said)}`)
    }
    return readings
  }

  async #readAmd (): Promise<Readings> {
    let amdSmiError: unknown
    if (!this.#amdSmiMissing) {
      try {
        return await this.#readAmdSmi()
      } catch (err) {
        if (err instanceof ProbeToolError && err.code === 'TOOL_NOT_FOUND' && this.#o.amdSmi === undefined) this.#amdSmiMissing = true
        amdSmiError = err
      }
    }
    try {
      return await this.#readRocmSmi()
    } catch (err) {
      throw amdSmiError ?? err
    }
  }

  async #readAmdSmi (): Promise<Readings> {
    const out = await this.#run(this.#o.amdSmi ?? 'amd-smi', AMD_SMI_SAMPLE_ARGS, 'amd-smi')
    if (out.exitCode !== 0) {
      throw new ProbeToolError('amd-smi', 'TOOL_FAILED', `amd-smi metric failed (exit ${out.exitCode ?? 'by signal'}${quote(firstLine(out.stderr) ?? firstLine(out.stdout))})`, { exitCode: out.exitCode })
    }
    let byIndex
    try {
      byIndex = parseAmdSmiReadings(out.stdout)
    } catch (err) {
      throw new ProbeToolError('amd-smi', 'BAD_OUTPUT', 'amd-smi metric printed something that is not JSON', { cause: err })
    }
    // amd-smi metric names GPUs by index only: the probe's result says which UUID each index is.
    const readings: Readings = new Map()
    for (const g of this.#gpus()) {
      const r = g.vendor === 'amd' && !g.simulated && g.index != null ? byIndex.get(g.index) : undefined
      if (r != null) readings.set(g.uuid, { uuid: g.uuid, ...r })
    }
    return readings
  }

  async #readRocmSmi (): Promise<Readings> {
    const out = await this.#run(this.#o.rocmSmi ?? 'rocm-smi', ROCM_SMI_SAMPLE_ARGS, 'rocm-smi')
    if (out.exitCode !== 0) {
      throw new ProbeToolError('rocm-smi', 'TOOL_FAILED', `rocm-smi failed (exit ${out.exitCode ?? 'by signal'}${quote(firstLine(out.stderr) ?? firstLine(out.stdout))})`, { exitCode: out.exitCode })
    }
    const parsed = parseRocmSmi(out.stdout)
    const bad = parsed.issues[0]
    if (bad != null) throw new ProbeToolError('rocm-smi', bad.code, bad.message)
    return new Map(parsed.gpus.map((g) => [g.uuid, {
      uuid: g.uuid, utilizationPercent: g.utilizationPercent, memoryUsedMiB: g.memoryUsedMiB, powerDrawW: g.powerDrawW
    }]))
  }
}

/**
 * One tool's answer, shared: calls while a run is in flight wait on it, and its result (or its failure,
 * as null) is kept for `cacheMs`. After a failure the next run waits a backoff that doubles from
 * `2 × cacheMs` (at least 1 s) up to `MAX_SAMPLE_BACKOFF_MS`. Logs the first failure of a streak as a
 * warning, the rest at debug, and the recovery once.
 */
class SharedReading {
  readonly #source: string
  readonly #read: () => Promise<Readings>
  readonly #o: { now: () => number, cacheMs: number, logger?: ProbeLogger | undefined }
  #inflight: Promise<Readings | null> | undefined
  #value: Readings | null = null
  #validUntil = Number.NEGATIVE_INFINITY
  #failures = 0

  constructor (source: string, read: () => Promise<Readings>, options: { now: () => number, cacheMs: number, logger?: ProbeLogger | undefined }) {
    this.#source = source
    this.#read = read
    this.#o = options
  }

  async get (): Promise<Readings | null> {
    if (this.#o.now() < this.#validUntil) return this.#value
    this.#inflight ??= this.#fetch().finally(() => { this.#inflight = undefined })
    return await this.#inflight
  }

  async #fetch (): Promise<Readings | null> {
    const log = this.#o.logger
    try {
      const readings = await this.#read()
      if (this.#failures > 0) log?.info({ source: this.#source, failures: this.#failures }, `${this.#source} answers again; GPU readings are back`)
      this.#failures = 0
      this.#value = readings
      this.#validUntil = this.#o.now() + this.#o.cacheMs
      return readings
    } catch (err) {
      this.#failures++
      const e = err as Error
      const fields = { source: this.#source, code: e instanceof ProbeToolError ? e.code : 'TOOL_FAILED', failures: this.#failures }
      if (this.#failures === 1) log?.warn(fields, `${e.message}; GPU readings are null until it answers (billing is not affected)`)
      else log?.debug(fields, e.message)
      const backoff = Math.min(MAX_SAMPLE_BACKOFF_MS, Math.max(1_000, 2 * this.#o.cacheMs) * 2 ** (this.#failures - 1))
      this.#value = null
      this.#validUntil = this.#o.now() + backoff
      return null
    }
  }
}

function nullReading (uuid: string): GpuReading {
  return { uuid, utilizationPercent: null, memoryUsedMiB: null, powerDrawW: null }
}
