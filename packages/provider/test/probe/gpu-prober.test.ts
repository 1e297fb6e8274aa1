import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GpuProber, GpuSampler, hasToolFailure, offerableGpus, resolveProbeExecutables, runTool, VANISHED_PROBLEM } from '../../src/probe/index.js'
import { bin, fixtures, standInProber } from './helpers.js'

describe('GpuProber against the stand-in nvidia-smi', () => {
  it('probes the 8× H100 capture through a real child process', async () => {
    const result = await standInProber({ FAKE_SMI_CAPTURE: 'h100x8.csv' }).probe()
    expect(result.errors).toEqual([])
    expect(result.gpus).toHaveLength(8)
    const g = result.gpus[0]
    expect(g).toMatchObject({
      uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1', class: 'H100-SXM-80GB', memoryTotalMiB: 81559,
      temperatureC: 30, powerDrawW: 100.89, healthy: true, busy: false, problems: [], simulated: false,
      rowRemapFailure: false, migDevices: []
    })
    expect(g?.spec).toMatchObject({ bf16Tflops: 989, memoryGiB: 80, bandwidthGBs: 3350 })
    expect(offerableGpus(result)).toHaveLength(8)
    expect(hasToolFailure(result)).toBe(false)
  })

  it('classes the A100 and RTX 4090 captures', async () => {
    const a100 = await standInProber({ FAKE_SMI_CAPTURE: 'a100x4.csv' }).probe()
    expect(a100.gpus.map((g) => g.class)).toEqual(Array(4).fill('A100-SXM4-80GB'))
    expect(a100.gpus[1]?.eccErrors).toEqual({ corrected: 353, uncorrected: 0 })
    expect(a100.gpus[1]?.healthy).toBe(true) // corrected errors alone are not a fault
    const rtx = await standInProber({ FAKE_SMI_CAPTURE: 'rtx4090x1.csv' }).probe()
    expect(rtx.gpus[0]).toMatchObject({ class: 'RTX-4090', eccErrors: { corrected: null, uncorrected: null }, rowRemapFailure: null, healthy: true })
  })

  it('judges ECC errors, heat, retired pages and foreign processes', async () => {
    const prober = standInProber(
      { FAKE_SMI_CAPTURE: 'h100x5-faults.csv', FAKE_SMI_APPS: 'h100x5-faults-apps.csv' },
      { leasedPids: () => new Set([7001]) }
    )
    const { gpus, errors } = await prober.probe()
    expect(errors).toEqual([])
    const [g0, g1, g2, g3, g4] = gpus
    expect(g0).toMatchObject({ healthy: true, busy: false, problems: [], utilizationPercent: 97 })
    expect(g0?.processes).toEqual([{ pid: 7001, name: 'python train.py', usedMemoryMiB: 20470 }])
    expect(g1).toMatchObject({ healthy: false, busy: false, problems: ['2 uncorrected ECC errors'] })
    expect(g2).toMatchObject({ healthy: false, temperatureC: 95 })
    expect(g2?.problems).toEqual(['temperature 95 °C is at or above the limit of 90 °C'])
    expect(g3).toMatchObject({ healthy: true, busy: true })
    expect(g3?.problems).toEqual(['in use by process 4242, which is not a gpumesh lease'])
    expect(g4).toMatchObject({ healthy: false, retiredPagesPending: true })
    expect(offerableGpus({ gpus }).map((g) => g.index)).toEqual([0])
  })

  it('honours probe.maxTemperatureC', async () => {
    const { gpus } = await standInProber({ FAKE_SMI_CAPTURE: 'h100x5-faults.csv' }, { maxTemperatureC: 96 }).probe()
    expect(gpus[2]?.healthy).toBe(true)
  })

  it('reads row-remap failures', async () => {
    const { gpus } = await standInProber({ FAKE_SMI_CAPTURE: 'a100x4.csv', FAKE_SMI_REMAP: 'a100x4-remap.csv' }).probe()
    expect(gpus[2]).toMatchObject({ rowRemapFailure: true, rowRemapPending: true, healthy: false, problems: ['memory row remapping failed'] })
    expect(gpus.filter((g) => g.healthy)).toHaveLength(3)
  })

  it('lists MIG instances from -L', async () => {
    const { gpus } = await standInProber({ FAKE_SMI_CAPTURE: 'a100x2-mig.csv', FAKE_SMI_LIST: 'a100x2-mig.list' }).probe()
    expect(gpus[0]).toMatchObject({ migEnabled: true, utilizationPercent: null })
    expect(gpus[0]?.migDevices.map((m) => m.profile)).toEqual(['3g.40gb', '2g.20gb', '1g.10gb'])
    expect(gpus[1]).toMatchObject({ migEnabled: false, migDevices: [] })
  })

  it('asks an old driver again without the fields it rejects', async () => {
    const result = await standInProber({ FAKE_SMI_CAPTURE: 'old-driver-v100x2.csv' }).probe()
    expect(result.errors).toEqual([])
    expect(result.gpus.map((g) => g.class)).toEqual(['V100-32GB', 'V100-32GB'])
    expect(result.gpus[0]).toMatchObject({ computeCapability: null, driverVersion: '440.33.01', temperatureC: 34 })
    expect(result.gpus[1]).toMatchObject({ temperatureC: null, utilizationPercent: null, powerDrawW: null, healthy: true })
  })

  it('reports exit 9 as the driver not loaded', async () => {
    const result = await standInProber({ FAKE_SMI_MODE: 'exit9' }).probe()
    expect(result.gpus).toEqual([])
    expect(result.errors).toHaveLength(1)
    expect(result.errors[0]).toMatchObject({ source: 'nvidia-smi', code: 'DRIVER_NOT_LOADED' })
    expect(result.errors[0]?.message).toContain('driver is not loaded')
    expect(hasToolFailure(result)).toBe(true)
  })

  it('reports exit 18 as a driver/library mismatch', async () => {
    const result = await standInProber({ FAKE_SMI_MODE: 'exit18' }).probe()
    expect(result.errors[0]).toMatchObject({ source: 'nvidia-smi', code: 'DRIVER_MISMATCH' })
    expect(result.errors[0]?.message).toContain('Driver/library version mismatch')
  })

  it('gives up on a hang after the timeout, without blocking the event loop', async () => {
    const prober = standInProber({ FAKE_SMI_MODE: 'hang' }, { timeoutMs: 300 })
    let ticks = 0
    const ticker = setInterval(() => { ticks++ }, 20)
    const started = performance.now()
    const result = await prober.probe()
    clearInterval(ticker)
    const elapsed = performance.now() - started
    expect(result.errors[0]).toMatchObject({ source: 'nvidia-smi', code: 'TOOL_TIMEOUT' })
    expect(result.errors[0]?.message).toContain('300 ms')
    expect(elapsed).toBeLessThan(3000)
    expect(ticks).toBeGreaterThan(3)
  })

  it('reports garbage output', async () => {
    const result = await standInProber({ FAKE_SMI_MODE: 'garbage' }).probe()
    expect(result.gpus).toEqual([])
    expect(result.errors.length).toBeGreaterThan(0)
    expect(result.errors.every((e) => e.code === 'BAD_OUTPUT')).toBe(true)
    expect(hasToolFailure(result)).toBe(true)
  })

  it('keeps the good rows around a short one', async () => {
    const result = await standInProber({ FAKE_SMI_CAPTURE: 'a100x4-short-row.csv' }).probe()
    expect(result.gpus.map((g) => g.index)).toEqual([0, 1, 3])
    expect(result.errors).toHaveLength(1)
    expect(result.errors[0]).toMatchObject({ code: 'BAD_OUTPUT' })
  })

  it('reports a GPU lost from the bus', async () => {
    const result = await standInProber({ FAKE_SMI_CAPTURE: 'rtx4090x1.csv', FAKE_SMI_MODE: 'lost' }).probe()
    expect(result.gpus).toHaveLength(1)
    expect(result.errors.map((e) => e.code)).toEqual(['GPU_LOST'])
  })

  it('treats "No devices were found" as no GPUs, not a failure', async () => {
    const result = await standInProber({ FAKE_SMI_MODE: 'nodevices' }).probe()
    expect(result).toMatchObject({ gpus: [], errors: [] })
  })

  it('marks a GPU that vanished since the last probe', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gpumesh-probe-'))
    try {
      const capture = join(dir, 'capture.csv')
      await writeFile(capture, await readFile(`${fixtures}nvidia-smi/a100x4.csv`, 'utf8'))
      const prober = standInProber({ FAKE_SMI_CAPTURE: capture })
      const first = await prober.probe()
      expect(first.gpus.every((g) => g.healthy)).toBe(true)
      const text = (await readFile(capture, 'utf8')).split('\n').filter((l) => !l.includes('GPU-62989189')).join('\n')
      await writeFile(capture, text)
      const second = await prober.probe()
      expect(second.gpus).toHaveLength(4)
      const gone = second.gpus.find((g) => g.uuid === 'GPU-62989189-9e1e-ac75-4676-114f14998542')
      expect(gone).toMatchObject({ healthy: false, problems: [VANISHED_PROBLEM], temperatureC: null, class: 'A100-SXM4-80GB' })
      expect(offerableGpus(second)).toHaveLength(3)
      expect(prober.lastResult).toBe(second)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('marks every GPU vanished when nvidia-smi starts failing', async () => {
    const env: Record<string, string | undefined> = { ...process.env, FAKE_SMI_CAPTURE: 'rtx4090x1.csv' }
    const prober = new GpuProber({ nvidiaSmi: bin('nvidia-smi'), dataDir: fixtures, hostFacts: false, systemInformationFallback: false, toolEnv: env })
    expect((await prober.probe()).gpus[0]?.healthy).toBe(true)
    env.FAKE_SMI_MODE = 'exit9'
    const second = await prober.probe()
    expect(second.errors.map((e) => e.code)).toEqual(['DRIVER_NOT_LOADED'])
    expect(second.gpus).toHaveLength(1)
    expect(second.gpus[0]).toMatchObject({ uuid: 'GPU-8ee5f1e0-e705-aac5-6d6e-b97ad59601ef', healthy: false, problems: [VANISHED_PROBLEM] })
    delete env.FAKE_SMI_MODE
    const third = await prober.probe()
    expect(third.gpus[0]).toMatchObject({ healthy: true, problems: [] })
  })
})

describe('a stand-in that prints a capture whatever it is asked', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'gpumesh-replay-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  /** A shell script replaying `capture` as is (`cat`) or without its comment lines (`grep`). */
  const replay = async (capture: string, how: 'cat' | 'grep'): Promise<string> => {
    const file = join(dir, `${how}-${capture}`)
    const body = how === 'cat' ? `cat '${fixtures}nvidia-smi/${capture}'` : `grep -v '^#' '${fixtures}nvidia-smi/${capture}'`
    await writeFile(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
    return file
  }

  it.each([
    ['h100x8.csv', 8, 'H100-SXM-80GB', 81559],
    ['a100x4.csv', 4, 'A100-SXM4-80GB', 81920],
    ['rtx4090x1.csv', 1, 'RTX-4090', 24564]
  ])('reads %s printed with or without its query line', async (capture, count, gpuClass, memory) => {
    for (const how of ['cat', 'grep'] as const) {
      const result = await new GpuProber({ nvidiaSmi: await replay(capture, how), dataDir: fixtures, hostFacts: false, systemInformationFallback: false }).probe()
      expect(result.errors, how).toEqual([])
      expect(result.gpus, how).toHaveLength(count)
      expect(result.gpus.every((g) => g.class === gpuClass && g.memoryTotalMiB === memory && g.healthy && !g.busy), how).toBe(true)
      expect(result.gpus[0]?.driverVersion, how).toMatch(/^5\d\d\./)
    }
  })

  it('gives the sampler readings from a capture that declares its columns', async () => {
    const sampler = new GpuSampler({ nvidiaSmi: await replay('h100x8.csv', 'cat') })
    const readings = await sampler.sample(['GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1'])
    expect(readings).toEqual([{ uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1', utilizationPercent: 0, memoryUsedMiB: 1, powerDrawW: 100.89 }])
  })
})

describe('simulation', () => {
  it('makes labelled GPUs only when asked', async () => {
    const prober = new GpuProber({
      nvidiaSmi: bin('nvidia-smi'),
      dataDir: fixtures,
      hostFacts: false,
      systemInformationFallback: false,
      toolEnv: { ...process.env, FAKE_SMI_MODE: 'nodevices' },
      simulate: [{ model: 'H100-SXM-80GB', count: 2 }, { model: 'NVIDIA GeForce RTX 4090', count: 1 }, { model: 'Mystery GPU', count: 1 }]
    })
    const { gpus, errors } = await prober.probe()
    expect(errors).toEqual([])
    expect(gpus.map((g) => g.uuid)).toEqual(['GPU-sim-H100-SXM-80GB-0', 'GPU-sim-H100-SXM-80GB-1', 'GPU-sim-RTX-4090-0', 'GPU-sim-Mystery-GPU-0'])
    expect(gpus.every((g) => g.simulated && g.source === 'simulation')).toBe(true)
    expect(gpus[0]).toMatchObject({ class: 'H100-SXM-80GB', vendor: 'nvidia', memoryTotalMiB: 81559, healthy: true, index: 0 })
    expect(gpus[3]).toMatchObject({ class: 'unknown', name: 'Mystery GPU', memoryTotalMiB: null })
    // The class table's compute capability, so orders with minComputeCapability can match them.
    expect(gpus.map((g) => g.computeCapability)).toEqual(['9.0', '9.0', '8.9', null])
    const again = await prober.probe()
    expect(again.gpus.map((g) => g.uuid)).toEqual(gpus.map((g) => g.uuid))
  })

  it('takes the compute capability from the class table; AMD classes have none', async () => {
    const prober = standInProber({ FAKE_SMI_MODE: 'nodevices' }, {
      simulate: ['B200', 'A100-SXM4-80GB', 'A10', 'T4', 'V100-32GB', 'MI300X'].map((model) => ({ model, count: 1 }))
    })
    const { gpus } = await prober.probe()
    expect(gpus.map((g) => [g.class, g.computeCapability])).toEqual([
      ['B200', '10.0'], ['A100-SXM4-80GB', '8.0'], ['A10', '8.6'], ['T4', '7.5'], ['V100-32GB', '7.0'], ['MI300X', null]
    ])
  })

  it('leaves a real GPU\'s compute capability to nvidia-smi, even when it says nothing', async () => {
    // The old-driver capture rejects compute_cap: the V100s stay null although their class has 7.0.
    const { gpus } = await standInProber({ FAKE_SMI_CAPTURE: 'old-driver-v100x2.csv' }).probe()
    expect(gpus.map((g) => [g.class, g.computeCapability])).toEqual([['V100-32GB', null], ['V100-32GB', null]])
    const h100 = await standInProber({ FAKE_SMI_CAPTURE: 'h100x8.csv' }).probe()
    expect(h100.gpus[0]?.computeCapability).toBe('9.0')
  })

  it('makes none by default', async () => {
    const { gpus } = await standInProber({ FAKE_SMI_MODE: 'nodevices' }).probe()
    expect(gpus).toEqual([])
  })
})

describe('AMD through stand-ins', () => {
  const amd = (env: Record<string, string>): GpuProber => new GpuProber({
    nvidiaSmi: bin('absent-nvidia-smi'),
    amdSmi: bin('amd-smi'),
    rocmSmi: bin('rocm-smi'),
    dataDir: fixtures,
    hostFacts: false,
    systemInformationFallback: false,
    toolEnv: { ...process.env, ...env }
  })

  it('uses amd-smi first', async () => {
    const result = await amd({ FAKE_AMD_SMI_STATIC: 'amd-smi-static-list.json', FAKE_AMD_SMI_METRIC: 'amd-smi-metric-list.json' }).probe()
    const gpus = result.gpus.filter((g) => g.vendor === 'amd')
    expect(gpus.map((g) => [g.class, g.source])).toEqual([['MI300X', 'amd-smi'], ['MI300X', 'amd-smi']])
    expect(gpus[1]).toMatchObject({ healthy: false, problems: ['1 uncorrected ECC error', 'temperature 93 °C is at or above the limit of 90 °C'] })
    // The configured nvidia-smi does not exist: that is a reported error, not silence.
    expect(result.errors).toEqual([expect.objectContaining({ source: 'nvidia-smi', code: 'TOOL_NOT_FOUND' })])
  })

  it('falls back to rocm-smi when amd-smi fails', async () => {
    const result = await amd({ FAKE_AMD_SMI_MODE: 'fail' }).probe()
    const gpus = result.gpus.filter((g) => g.vendor === 'amd')
    expect(gpus.map((g) => [g.class, g.source])).toEqual([['MI300X', 'rocm-smi'], ['MI100', 'rocm-smi']])
    expect(gpus[1]?.name).toBe('AMD Instinct MI100')
    expect(result.errors.filter((e) => e.source !== 'nvidia-smi')).toEqual([])
  })
})

describe('runTool', () => {
  it('kills a hung child and rejects with TOOL_TIMEOUT', async () => {
    await expect(runTool(bin('nvidia-smi'), ['-L'], { timeoutMs: 200, env: { ...process.env, FAKE_SMI_MODE: 'hang' } }))
      .rejects.toMatchObject({ name: 'ProbeToolError', code: 'TOOL_TIMEOUT' })
  })

  it('stops on abort', async () => {
    const ac = new AbortController()
    const p = runTool(bin('nvidia-smi'), ['-L'], { timeoutMs: 10_000, signal: ac.signal, env: { ...process.env, FAKE_SMI_MODE: 'hang' } })
    setTimeout(() => { ac.abort() }, 100)
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' })
  })

  it('caps the output it keeps', async () => {
    const out = await runTool(bin('nvidia-smi'), ['-L'], { timeoutMs: 5000, maxOutputBytes: 64, env: { ...process.env, FAKE_SMI_CAPTURE: 'h100x8.csv' } })
    expect(out.stdout.length).toBeLessThanOrEqual(64)
    expect(out.exitCode).toBe(0)
  })

  it('rejects with TOOL_NOT_FOUND for a missing program', async () => {
    await expect(runTool(bin('no-such-tool'), [], { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'TOOL_NOT_FOUND' })
  })
})

describe('resolveProbeExecutables', () => {
  it('lets the environment win over the config', () => {
    expect(resolveProbeExecutables({ nvidiaSmi: '/opt/a/nvidia-smi', amdSmi: '/opt/amd-smi', rocmSmi: null }, { GPUMESH_NVIDIA_SMI: '/env/nvidia-smi', GPUMESH_ROCM_SMI: '' }))
      .toEqual({ nvidiaSmi: '/env/nvidia-smi', amdSmi: '/opt/amd-smi' })
    expect(resolveProbeExecutables(undefined, {})).toEqual({})
  })
})
