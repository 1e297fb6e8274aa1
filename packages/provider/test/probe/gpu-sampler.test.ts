import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GpuSampler, parseNvidiaReadings, type GpuSamplerOptions, type ProbeLogger, type SamplerGpu } from '../../src/probe/index.js'
import { simulatedGpuSampler } from '../../src/jobs/index.js'
import { bin, captureRows } from './helpers.js'

const H100_0 = 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1'
const H100_1 = 'GPU-7c3cadbd-17e5-0913-f69b-c618122ea0cd'
const A100_2 = 'GPU-62989189-9e1e-ac75-4676-114f14998542'
const V100_1 = 'GPU-0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f'
const NULLS = { utilizationPercent: null, memoryUsedMiB: null, powerDrawW: null }

let dir: string
let callsN = 0
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'gpumesh-sampler-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** A fresh file the stand-in appends one line to per run. */
const callsFile = (): string => join(dir, `calls-${callsN++}`)
const runs = async (file: string): Promise<string[]> => {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '')
  } catch {
    return []
  }
}

interface Logged { level: 'debug' | 'info' | 'warn', obj: object, msg: string | undefined }
function recorder (): ProbeLogger & { logged: Logged[] } {
  const logged: Logged[] = []
  const at = (level: Logged['level']) => (obj: object, msg?: string): void => { logged.push({ level, obj, msg }) }
  return { logged, debug: at('debug'), info: at('info'), warn: at('warn') }
}

/** A sampler on the stand-in nvidia-smi; `clock.t` is its monotonic time, moved by hand. */
function nvidiaSampler (env: Record<string, string | undefined>, options: Partial<GpuSamplerOptions> = {}): { sampler: GpuSampler, clock: { t: number } } {
  const clock = { t: 0 }
  const sampler = new GpuSampler({ nvidiaSmi: bin('nvidia-smi'), toolEnv: { ...process.env, ...env }, now: () => clock.t, ...options })
  return { sampler, clock }
}

describe('parseNvidiaReadings', () => {
  it('reads the light query by UUID; every missing-value spelling is null, 0 stays 0', () => {
    const { readings, skipped } = parseNvidiaReadings(captureRows('nvidia-smi/h100x2-training.csv') +
      'Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error\n')
    expect(readings.get(H100_0)).toEqual({ uuid: H100_0, utilizationPercent: 97, memoryUsedMiB: 71234, powerDrawW: 612.45 })
    expect(readings.get(H100_1)).toEqual({ uuid: H100_1, utilizationPercent: null, memoryUsedMiB: 40960, powerDrawW: null })
    expect(skipped).toBe(1)
    expect(parseNvidiaReadings('GPU-a, 0, 0, 0\n').readings.get('GPU-a')).toEqual({ uuid: 'GPU-a', utilizationPercent: 0, memoryUsedMiB: 0, powerDrawW: 0 })
  })
})

describe('GpuSampler with the stand-in nvidia-smi', () => {
  it('gives each leased GPU its values from one light query', async () => {
    const calls = callsFile()
    const { sampler } = nvidiaSampler({ FAKE_SMI_CAPTURE: 'h100x2-training.csv', FAKE_SMI_CALLS: calls })
    const readings = await sampler.sample([H100_1, 'GPU-not-in-the-output', H100_0])
    expect(readings).toEqual([
      { uuid: H100_1, utilizationPercent: null, memoryUsedMiB: 40960, powerDrawW: null },
      { uuid: 'GPU-not-in-the-output', ...NULLS },
      { uuid: H100_0, utilizationPercent: 97, memoryUsedMiB: 71234, powerDrawW: 612.45 }
    ])
    expect(await runs(calls)).toEqual(['--query-gpu=uuid,utilization.gpu,memory.used,power.draw --format=csv,noheader,nounits'])
  })

  it('reads the full captures by field name, and an old driver\'s bare N/A as null', async () => {
    const { sampler: a100 } = nvidiaSampler({ FAKE_SMI_CAPTURE: 'a100x4.csv' })
    expect(await a100.sample([A100_2])).toEqual([{ uuid: A100_2, utilizationPercent: 0, memoryUsedMiB: 1, powerDrawW: 58.78 }])
    const { sampler: v100 } = nvidiaSampler({ FAKE_SMI_CAPTURE: 'old-driver-v100x2.csv' })
    expect(await v100.sample([V100_1])).toEqual([{ uuid: V100_1, utilizationPercent: null, memoryUsedMiB: 0, powerDrawW: null }])
  })

  it('runs one child for concurrent calls and reuses its answer for the cache window', async () => {
    const calls = callsFile()
    const { sampler, clock } = nvidiaSampler({ FAKE_SMI_CAPTURE: 'h100x2-training.csv', FAKE_SMI_CALLS: calls }, { cacheMs: 500 })
    // Two leases sampling at the same moment.
    const [a, b] = await Promise.all([sampler.sample([H100_0]), sampler.sample([H100_1])])
    expect(a[0]?.utilizationPercent).toBe(97)
    expect(b[0]?.memoryUsedMiB).toBe(40960)
    expect(await runs(calls)).toHaveLength(1)
    clock.t = 499
    await sampler.sample([H100_0, H100_1])
    expect(await runs(calls)).toHaveLength(1)
    clock.t = 500
    expect((await sampler.sample([H100_0]))[0]?.powerDrawW).toBe(612.45)
    expect(await runs(calls)).toHaveLength(2)
  })

  it('gives nulls within the timeout when nvidia-smi hangs, logs the streak once, and says when it is back', async () => {
    const calls = callsFile()
    const env: Record<string, string | undefined> = { ...process.env, FAKE_SMI_CAPTURE: 'h100x2-training.csv', FAKE_SMI_CALLS: calls, FAKE_SMI_MODE: 'hang' }
    const logger = recorder()
    const clock = { t: 0 }
    // The timeout leaves the stand-in (a Node script) time to start and record its run on a loaded machine.
    const timeoutMs = 2_000
    const sampler = new GpuSampler({ nvidiaSmi: bin('nvidia-smi'), toolEnv: env, timeoutMs, cacheMs: 500, now: () => clock.t, logger })
    const started = Date.now()
    expect(await Promise.all([sampler.sample([H100_0]), sampler.sample([H100_1])]))
      .toEqual([[{ uuid: H100_0, ...NULLS }], [{ uuid: H100_1, ...NULLS }]])
    expect(Date.now() - started).toBeLessThan(timeoutMs + 1_500)
    expect(await runs(calls)).toHaveLength(1)
    // Backing off: the next tick does not start another child that could hang too.
    clock.t = 900
    expect(await sampler.sample([H100_0])).toEqual([{ uuid: H100_0, ...NULLS }])
    expect(await runs(calls)).toHaveLength(1)
    clock.t = 1_000
    await sampler.sample([H100_0])
    expect(await runs(calls)).toHaveLength(2)
    const warnings = logger.logged.filter((l) => l.level === 'warn')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]?.obj).toMatchObject({ source: 'nvidia-smi', code: 'TOOL_TIMEOUT' })
    expect(logger.logged.filter((l) => l.level === 'debug')).toHaveLength(1)

    delete env.FAKE_SMI_MODE
    clock.t = 10_000
    expect((await sampler.sample([H100_0]))[0]?.utilizationPercent).toBe(97)
    expect(logger.logged.filter((l) => l.level === 'info')).toEqual([
      expect.objectContaining({ obj: expect.objectContaining({ source: 'nvidia-smi', failures: 2 }) })
    ])
    expect(logger.logged.filter((l) => l.level === 'warn')).toHaveLength(1)
  })

  it('gives nulls when the driver is not loaded or nvidia-smi is missing', async () => {
    const logger = recorder()
    const { sampler } = nvidiaSampler({ FAKE_SMI_MODE: 'exit9' }, { logger })
    expect(await sampler.sample([H100_0])).toEqual([{ uuid: H100_0, ...NULLS }])
    expect(logger.logged).toEqual([expect.objectContaining({ level: 'warn', obj: expect.objectContaining({ code: 'DRIVER_NOT_LOADED' }) })])
    const { sampler: missing } = nvidiaSampler({}, { nvidiaSmi: join(dir, 'no-such-nvidia-smi') })
    expect(await missing.sample([H100_0])).toEqual([{ uuid: H100_0, ...NULLS }])
  })

  it('keeps the readings of the other GPUs when one fell off the bus', async () => {
    const { sampler } = nvidiaSampler({ FAKE_SMI_CAPTURE: 'a100x4.csv', FAKE_SMI_MODE: 'lost' })
    expect((await sampler.sample([A100_2]))[0]).toMatchObject({ uuid: A100_2, powerDrawW: 58.78 })
  })

  it('leaves simulated GPUs to the synthetic sampler and runs no tool for them', async () => {
    const calls = callsFile()
    const gpus: SamplerGpu[] = [
      { uuid: 'GPU-sim-H100-SXM-80GB-0', index: 0, vendor: 'nvidia', simulated: true },
      { uuid: H100_0, index: 1, vendor: 'nvidia', simulated: false }
    ]
    const { sampler } = nvidiaSampler({ FAKE_SMI_CAPTURE: 'h100x2-training.csv', FAKE_SMI_CALLS: calls }, {
      gpus: () => gpus, simulated: simulatedGpuSampler({ memoryMiB: 1234, powerW: 100 })
    })
    const [sim] = await sampler.sample(['GPU-sim-H100-SXM-80GB-0'])
    expect(sim?.uuid).toBe('GPU-sim-H100-SXM-80GB-0')
    expect(sim?.utilizationPercent).toBeGreaterThan(80)
    expect(await runs(calls)).toEqual([])
    // By prefix when the probe has not listed it (yet); a mix in one call keeps the order asked.
    const mixed = await sampler.sample([H100_0, 'GPU-sim-RTX-4090-3'])
    expect(mixed.map((r) => [r.uuid, r.utilizationPercent != null])).toEqual([[H100_0, true], ['GPU-sim-RTX-4090-3', true]])
    expect(mixed[0]?.utilizationPercent).toBe(97)
    expect(await runs(calls)).toHaveLength(1)
  })
})

describe('GpuSampler on AMD stand-ins', () => {
  const MI300X_0 = 'AMD-d1cc5b1b3f2b6a51'
  const MI300X_1 = 'AMD-8b3a4c1d2e5f6071'
  const gpus: SamplerGpu[] = [
    { uuid: MI300X_0, index: 0, vendor: 'amd', simulated: false },
    { uuid: MI300X_1, index: 1, vendor: 'amd', simulated: false }
  ]
  const amd = (env: Record<string, string>): GpuSampler => new GpuSampler({
    nvidiaSmi: bin('absent-nvidia-smi'), amdSmi: bin('amd-smi'), rocmSmi: bin('rocm-smi'), gpus: () => gpus, toolEnv: { ...process.env, ...env }
  })

  it('reads amd-smi metric by the probe\'s GPU index', async () => {
    expect(await amd({ FAKE_AMD_SMI_METRIC: 'amd-smi-metric-list.json' }).sample([MI300X_1, MI300X_0])).toEqual([
      { uuid: MI300X_1, utilizationPercent: 0, memoryUsedMiB: 0, powerDrawW: 141 },
      { uuid: MI300X_0, utilizationPercent: 12, memoryUsedMiB: 283, powerDrawW: 182 }
    ])
  })

  it('falls back to rocm-smi when amd-smi fails', async () => {
    expect(await amd({ FAKE_AMD_SMI_MODE: 'fail' }).sample([MI300X_0, MI300X_1])).toEqual([
      { uuid: MI300X_0, utilizationPercent: 0, memoryUsedMiB: 283, powerDrawW: 139 },
      { uuid: MI300X_1, ...NULLS } // not in the rocm-smi capture
    ])
  })
})
