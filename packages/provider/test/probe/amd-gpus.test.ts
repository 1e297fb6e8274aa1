// AMD GPUs as first-class: busy detection, output after a permission banner, failed metric calls, power
// limit and driver, one identity per GPU. Captures and their sources: test/fixtures/amd/MANIFEST.md.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  GpuProber, normalizeAmdSerial, normalizeBusId, normalizeGfxTarget, offerableGpus, hasToolFailure, parseAmdSmi,
  parseAmdSmiProcesses, parseAmdSmiReadings, parseRocmSmi, parseRocmSmiPids
} from '../../src/probe/index.js'
import { dirname, join } from 'node:path'
import { bin, fixtures, KFD_R9700_GPU_IDS, kfdSysfs, readFixture } from './helpers.js'

// Node for the stand-ins' shebang, and no nvidia-smi or rocm-smi unless named.
const PATH = dirname(process.execPath)

/** A sysfs root whose KFD lists no process (constructed, MANIFEST.md): the tests do not depend on the host's /sys. */
const NO_KFD_PROCESSES = `${fixtures}amd/constructed/kfd-r9700x4`

interface AmdOptions { allowUnknownHealth?: boolean, rocmSmi?: boolean, sysfsRoot?: string, uid?: number }

const amd = (env: Record<string, string>, options: AmdOptions = {}): GpuProber => new GpuProber({
  amdSmi: bin('amd-smi'),
  ...(options.rocmSmi === true ? { rocmSmi: bin('rocm-smi') } : {}),
  ...(options.allowUnknownHealth !== undefined ? { allowUnknownHealth: options.allowUnknownHealth } : {}),
  sysfsRoot: options.sysfsRoot ?? NO_KFD_PROCESSES,
  ...(options.uid !== undefined ? { uid: options.uid } : {}),
  dataDir: fixtures,
  hostFacts: false,
  systemInformationFallback: false,
  toolEnv: { ...process.env, PATH, ...env }
})

const R9700 = {
  FAKE_AMD_SMI_STATIC: 'constructed/r9700x4-amd-smi-static.json',
  FAKE_AMD_SMI_METRIC: 'constructed/r9700x4-amd-smi-metric.json'
}

/** Four R9700s under a live vLLM workload, amd-smi 26.2.1 of ROCm 7.2: static, `metric --ecc`, process (captured). */
const R9700_VLLM = {
  FAKE_AMD_SMI_STATIC: 'captured/amd-smi-static-r9700x4-rocm7.2.json',
  FAKE_AMD_SMI_METRIC: 'captured/amd-smi-metric-ecc-r9700x4-rocm7.2.json'
}
const VLLM_PROCESSES = 'captured/amd-smi-process-r9700x4-vllm-rocm7.2.json'
const VLLM_PIDS = [1882331, 1883200, 1883505, 1883506, 1883507, 1883508]

describe('captured tool output', () => {
  it('reads rocm-smi on a Radeon RX 7900 XT', () => {
    const { gpus, issues } = parseRocmSmi(readFixture('amd/captured/rocm-smi-rx7900xt.json'))
    expect(issues).toEqual([])
    expect(gpus).toEqual([expect.objectContaining({
      name: 'Radeon RX 7900 XT', memoryTotalMiB: 20464, memoryUsedMiB: 27, utilizationPercent: 0, computeCapability: 'gfx1100', pciDeviceId: '1002:744c'
    })])
    // This capture asked for no temperature: health unreadable, said so.
    expect(gpus[0]?.healthUnreadable).toMatch(/no temperature/)
  })

  it('reads rocm-smi on an MI250X GCD, whose gfx9010 is gfx90a', () => {
    const { gpus } = parseRocmSmi(readFixture('amd/captured/rocm-smi-mi250x-productname.json'))
    expect(gpus[0]).toMatchObject({ name: 'AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2', computeCapability: 'gfx90a', pciDeviceId: '1002:7408' })
  })

  it('reads amd-smi static on an MI210: power limit from --limit, driver version from the kernel banner', () => {
    const { gpus, issues } = parseAmdSmi(readFixture('amd/captured/amd-smi-static-mi210.json'), null)
    expect(issues).toEqual([])
    expect(gpus[0]).toMatchObject({
      name: 'AMD Instinct MI210', memoryTotalMiB: 65520, computeCapability: 'gfx90a', pciDeviceId: '1002:740f',
      powerLimitW: 300, driverVersion: '6.14.0-24-generic'
    })
  })

  it('reads amd-smi static of an integrated Radeon run as a service user', () => {
    const { gpus } = parseAmdSmi(readFixture('amd/captured/amd-smi-static-asic-granite-ridge.json'), null)
    expect(gpus[0]).toMatchObject({ name: 'Granite Ridge [Radeon Graphics]', computeCapability: 'gfx1036', uuid: 'AMD-index-0' })
  })

  it('reads amd-smi static of a Radeon 8060S (Strix Halo) on ROCm 6.3.1: its 0 W limits are no power cap', () => {
    const { gpus, issues } = parseAmdSmi(readFixture('amd/captured/amd-smi-static-strix-halo.json'), null)
    expect(issues).toEqual([])
    expect(gpus).toEqual([expect.objectContaining({
      name: 'Strix Halo [Radeon Graphics / Radeon 8050S Graphics / Radeon 8060S Graphics]', uuid: 'AMD-pci-0000:c4:00.0',
      pciBusId: '0000:c4:00.0', pciDeviceId: '1002:1586', memoryTotalMiB: 32768, computeCapability: 'gfx1151',
      driverVersion: '6.17.1-300.fc43.x86_64', powerLimitW: null
    })])
  })

  it('probes that Strix Halo through the stand-in: an idle GPU of no known class, with no power cap, whose health is unknown without metrics', async () => {
    const result = await amd({ FAKE_AMD_SMI_STATIC: 'captured/amd-smi-static-strix-halo.json' }).probe()
    expect(result.gpus.map((g) => [g.source, g.class, g.powerLimitW, g.memoryTotalMiB, g.busy])).toEqual([['amd-smi', 'unknown', null, 32768, false]])
    expect(result.gpus[0]?.problems.join(' ')).toMatch(/its health cannot be read/)
  })

  it('reads rocm-smi of ROCm 7.0.2 on an MI300X, which has no edge sensor: junction temperature, socket power, 750 W cap', () => {
    const { gpus, issues } = parseRocmSmi(readFixture('amd/captured/rocm-smi-mi300x-rocm7.0.2-excerpt.json'))
    expect(issues).toEqual([])
    expect(gpus).toEqual([expect.objectContaining({
      temperatureC: 45, powerDrawW: 159, powerLimitW: 750, utilizationPercent: 0, memoryTotalMiB: 196288, memoryUsedMiB: 286, healthUnreadable: null
    })])
  })

  it('meters amd-smi metric of ROCm 7.0.2 on the same MI300X, whose edge temperature is N/A: hotspot instead', () => {
    const metric = readFixture('amd/captured/amd-smi-metric-mi300x-rocm7.0.2-excerpt.json')
    expect(parseAmdSmiReadings(metric).get(0)).toEqual({ utilizationPercent: 0, memoryUsedMiB: null, powerDrawW: 158 })
    const { gpus } = parseAmdSmi(JSON.stringify([{ gpu: 0, asic: { market_name: 'AMD Instinct MI300X' } }]), metric)
    expect(gpus[0]).toMatchObject({ temperatureC: 45, powerDrawW: 158, healthUnreadable: null })
  })

  it('reads rocm-smi of ROCm 7 on a Radeon RX 9060 XT', () => {
    const { gpus } = parseRocmSmi(readFixture('amd/captured/rocm-smi-rx9060xt-rocm7-excerpt.json'))
    expect(gpus).toEqual([expect.objectContaining({
      temperatureC: 39, powerDrawW: 17, powerLimitW: 175, utilizationPercent: 100, memoryTotalMiB: 16304, memoryUsedMiB: 9078
    })])
  })

  it('places rocm-smi --showpids processes with --showpidgpus, and ignores processes that use no GPU', () => {
    const procs = parseRocmSmiPids(readFixture('amd/constructed/rocm-smi-pids-mi300.txt'), [0, 1])
    expect(procs.get(0)).toEqual([])
    expect(procs.get(1)).toEqual([{ pid: 1168514, name: 'pt_main_thread', usedMemoryMiB: 169169 }])
  })

  it('reads a --showpids table whose figures are UNKNOWN: four MPI ranks, each on some GPU, so every GPU is busy', () => {
    const procs = parseRocmSmiPids(readFixture('amd/captured/rocm-smi-showpids-gromacs.txt'), [0, 1, 2, 3])
    for (const i of [0, 1, 2, 3]) expect(procs.get(i)?.map((p) => [p.pid, p.name, p.usedMemoryMiB])).toEqual([[55573, 'gmx_mpi', null], [55571, 'gmx_mpi', null], [55574, 'gmx_mpi', null], [55572, 'gmx_mpi', null]])
  })

  it('reads rocm-smi --showpids=details of ROCm 6.4.2 on Instinct MI50s, one llama-server row per GPU it holds memory on', () => {
    const procs = parseRocmSmiPids(readFixture('amd/captured/rocm-smi-showpids-details-mi50-rocm6.4.2.txt'), [0, 1, 2])
    // The GPU column says 2 (the number of GPUs, not which): not placed, so on every GPU, memory unknown per GPU.
    for (const i of [0, 1, 2]) expect(procs.get(i)).toEqual([{ pid: 132174, name: 'llama-server', usedMemoryMiB: null }])
  })

  it('puts a --showpids process on every GPU when it is not said which it uses (fail closed)', () => {
    const procs = parseRocmSmiPids(readFixture('amd/captured/rocm-smi-showpids-mi300.txt'), [0, 1])
    expect(procs.get(0)?.map((p) => p.pid)).toEqual([1168514])
    expect(procs.get(1)?.map((p) => p.pid)).toEqual([1168514])
  })
})

describe('one identity per GPU', () => {
  it('normalises serials, bus ids and gfx names', () => {
    expect(normalizeAmdSerial('0x00C2A15B7E90D314')).toBe('c2a15b7e90d314')
    expect(normalizeAmdSerial('0xc2a15b7e90d314')).toBe('c2a15b7e90d314')
    expect(normalizeAmdSerial('0x0000000000000000')).toBeNull()
    expect(normalizeBusId('0000:0C:00.0')).toBe('0000:0c:00.0')
    expect(normalizeBusId('C9:00.0')).toBe('0000:c9:00.0')
    expect([normalizeGfxTarget('gfx9010'), normalizeGfxTarget('gfx90a'), normalizeGfxTarget('gfx90a:sramecc+:xnack-')]).toEqual(['gfx90a', 'gfx90a', 'gfx90a'])
    expect(['gfx908', 'gfx942', 'gfx950', 'gfx1030', 'gfx1036', 'gfx1100', 'gfx1201'].map(normalizeGfxTarget))
      .toEqual(['gfx908', 'gfx942', 'gfx950', 'gfx1030', 'gfx1036', 'gfx1100', 'gfx1201'])
  })

  it.each([
    ['R9700 host', 'constructed/r9700x4-amd-smi-static.json', 'constructed/r9700x4-amd-smi-metric.json', 'constructed/r9700x4-rocm-smi.json'],
    ['MI250X host', 'constructed/mi250x-amd-smi-static.json', 'constructed/mi250x-amd-smi-metric.json', 'constructed/mi250x-rocm-smi.json']
  ])('gives the same UUID, bus id and gfx name from amd-smi and rocm-smi on the %s', (_host, staticFile, metricFile, rocmFile) => {
    const a = parseAmdSmi(readFixture(`amd/${staticFile}`), readFixture(`amd/${metricFile}`)).gpus
    const r = parseRocmSmi(readFixture(`amd/${rocmFile}`)).gpus
    expect(a.length).toBeGreaterThan(0)
    expect(r.map((g) => [g.uuid, g.pciBusId, g.computeCapability])).toEqual(a.map((g) => [g.uuid, g.pciBusId, g.computeCapability]))
    expect(a[0]?.uuid).toMatch(/^AMD-[0-9a-f]+$/)
  })

  it('reads power limit and driver version on both paths', () => {
    const a = parseAmdSmi(readFixture('amd/constructed/r9700x4-amd-smi-static.json'), readFixture('amd/constructed/r9700x4-amd-smi-metric.json')).gpus
    const r = parseRocmSmi(readFixture('amd/constructed/r9700x4-rocm-smi.json')).gpus
    for (const g of [...a, ...r]) expect(g).toMatchObject({ powerLimitW: 300, driverVersion: '6.16.6' })
  })

  it('reads the secondary die of an MI250X, which reports no power, as healthy with power unknown', () => {
    const r = parseRocmSmi(readFixture('amd/constructed/mi250x-rocm-smi.json')).gpus
    const a = parseAmdSmi(readFixture('amd/constructed/mi250x-amd-smi-static.json'), readFixture('amd/constructed/mi250x-amd-smi-metric.json')).gpus
    expect(r[1]).toMatchObject({ powerDrawW: null, temperatureC: 41, healthUnreadable: null })
    expect(a[1]).toMatchObject({ powerDrawW: null, temperatureC: 41, healthUnreadable: null })
    expect(a[0]).toMatchObject({ powerDrawW: 92, powerLimitW: 560 })
  })
})

describe('busy AMD GPUs', () => {
  it('reads amd-smi 26.2.1 (ROCm 7.2) listing every vLLM process under every GPU with its total: on each GPU, memory there unknown', () => {
    const procs = parseAmdSmiProcesses(readFixture(`amd/${VLLM_PROCESSES}`))
    for (const i of [0, 1, 2, 3]) {
      expect(procs.get(i)?.map((p) => [p.pid, p.name, p.usedMemoryMiB])).toEqual(VLLM_PIDS.map((pid) => [pid, '/usr/bin/python3.12', null]))
    }
  })

  it('keeps a process listed under every GPU only where it holds memory', () => {
    const everywhere = JSON.stringify([
      { gpu: 0, process_list: [{ process_info: { name: 'python3', pid: 7, memory_usage: { vram_mem: { value: 0, unit: 'B' } } } }] },
      { gpu: 1, process_list: [{ process_info: { name: 'python3', pid: 7, memory_usage: { vram_mem: { value: 1073741824, unit: 'B' } } } }] },
      { gpu: 2, process_list: [{ process_info: 'No running processes detected' }] }
    ])
    const placed = parseAmdSmiProcesses(everywhere)
    expect([placed.get(0), placed.get(1)?.map((p) => p.pid), placed.get(2)]).toEqual([[], [7], []])
  })

  it('marks the four R9700s of the captured ROCm 7.2 vLLM host busy and names the processes', async () => {
    const result = await amd({ ...R9700_VLLM, FAKE_AMD_SMI_PROCESS: VLLM_PROCESSES }).probe()
    const gpus = result.gpus.filter((g) => g.vendor === 'amd')
    expect(result.errors).toEqual([])
    expect(gpus.map((g) => [g.class, g.healthy, g.busy])).toEqual(Array(4).fill(['R9700', true, true]))
    expect(gpus[0]?.problems).toEqual(VLLM_PIDS.map((pid) => `in use by process ${pid} (/usr/bin/python3.12), which is not a gpumesh lease`))
    expect(gpus.map((g) => [g.uuid, g.pciBusId])).toEqual([
      ['AMD-64ac21a676f77a5b', '0000:03:00.0'], ['AMD-10db7231938f80d6', '0000:23:00.0'],
      ['AMD-e9ed4857e8792af2', '0000:83:00.0'], ['AMD-10c90cdc05825aae', '0000:c3:00.0']
    ])
    expect(gpus[0]).toMatchObject({
      name: 'AMD Radeon AI PRO R9700', memoryTotalMiB: 32624, powerLimitW: 300, driverVersion: '6.16.6',
      computeCapability: 'gfx1201', pciDeviceId: '1002:7551', eccErrors: { corrected: 0, uncorrected: 0 }
    })
    expect(offerableGpus(result)).toEqual([])
  })

  it('offers the same GPUs when no process uses them, and a lease\'s own processes do not make them busy', async () => {
    const idle = await amd(R9700_VLLM).probe()
    expect(offerableGpus(idle)).toHaveLength(4)
    const leased = await new GpuProber({
      amdSmi: bin('amd-smi'), dataDir: fixtures, hostFacts: false, systemInformationFallback: false,
      leasedPids: () => new Set(VLLM_PIDS),
      toolEnv: { ...process.env, PATH, ...R9700_VLLM, FAKE_AMD_SMI_PROCESS: VLLM_PROCESSES }
    }).probe()
    expect(offerableGpus(leased)).toHaveLength(4)
  })

  it('counts the GPUs busy when the process list cannot be read, and says so', async () => {
    const result = await amd({ ...R9700_VLLM, FAKE_AMD_SMI_PROCESS: 'captured/amd-smi-banner-rocm6.4.txt' }).probe()
    expect(offerableGpus(result)).toEqual([])
    expect(result.errors).toEqual([expect.objectContaining({ source: 'amd-smi', code: 'BAD_OUTPUT' })])
    expect(result.gpus[0]?.problems.join(' ')).toMatch(/processes using it cannot be listed/)
  })

  it('marks GPUs busy from the captured ROCm 6.4.2 process table of a host running llama-server', async () => {
    const result = await amd({ FAKE_AMD_SMI_MODE: 'fail', FAKE_ROCM_SMI_PIDS: 'captured/rocm-smi-showpids-details-mi50-rocm6.4.2.txt' }, { rocmSmi: true }).probe()
    const gpus = result.gpus.filter((g) => g.vendor === 'amd')
    expect(gpus.map((g) => [g.source, g.busy])).toEqual([['rocm-smi', true], ['rocm-smi', true]])
    expect(gpus[0]?.problems).toEqual(['in use by process 132174 (llama-server), which is not a gpumesh lease'])
    expect(offerableGpus(result)).toEqual([])
  })

  it('offers the MI300X of the captured ROCm 7.0.2 rocm-smi output when amd-smi fails and no process uses it', async () => {
    const result = await amd({ FAKE_AMD_SMI_MODE: 'fail', FAKE_ROCM_SMI_JSON: 'captured/rocm-smi-mi300x-rocm7.0.2-excerpt.json' }, { rocmSmi: true }).probe()
    expect(result.gpus.map((g) => [g.source, g.temperatureC, g.healthy, g.busy])).toEqual([['rocm-smi', 45, true, false]])
  })

  it('asks rocm-smi --showpids --showpidgpus on the rocm-smi path', async () => {
    const result = await amd({ FAKE_AMD_SMI_MODE: 'fail', FAKE_ROCM_SMI_PIDS: 'constructed/rocm-smi-pids-mi300.txt' }, { rocmSmi: true }).probe()
    const gpus = result.gpus.filter((g) => g.vendor === 'amd')
    expect(gpus.map((g) => [g.source, g.busy])).toEqual([['rocm-smi', false], ['rocm-smi', true]])
    expect(gpus[1]?.problems).toEqual(['in use by process 1168514 (pt_main_thread), which is not a gpumesh lease'])
  })
})

describe('amd-smi as a user outside the render and video groups', () => {
  it.each([
    ['ROCm 6.4', 'captured/amd-smi-banner-rocm6.4.txt'],
    ['ROCm 7.1.1', 'captured/amd-smi-banner-rocm7.1.1.txt']
  ])('reads the JSON after the %s banner and says what to fix', async (_release, banner) => {
    const result = await amd({ FAKE_AMD_SMI_BANNER: banner, FAKE_AMD_SMI_STATIC: 'amd-smi-static-list.json', FAKE_AMD_SMI_METRIC: 'amd-smi-metric-list.json' }).probe()
    expect(result.gpus.map((g) => [g.class, g.source])).toEqual([['MI300X', 'amd-smi'], ['MI300X', 'amd-smi']])
    expect(result.errors.map((e) => e.code)).toEqual(['NO_PERMISSION'])
    expect(result.errors[0]?.message).toMatch(/add the user that runs gpumesh to the render and video groups \(sudo usermod -aG render,video <user>\)/)
    // Without permissions amd-smi may not see other users' processes: nothing is offered.
    expect(offerableGpus(result)).toEqual([])
    expect(hasToolFailure(result)).toBe(true)
  })

  it('says what to fix when ROCm 7.0\'s amd-smi stops on it, while rocm-smi still reads the GPUs', async () => {
    const result = await amd({ FAKE_AMD_SMI_MODE: 'denied', FAKE_ROCM_SMI_JSON: 'constructed/mi250x-rocm-smi.json' }, { rocmSmi: true }).probe()
    expect(result.gpus.map((g) => [g.class, g.source, g.healthy, g.busy])).toEqual([['MI250X', 'rocm-smi', true, false], ['MI250X', 'rocm-smi', true, false]])
    expect(result.errors).toEqual([expect.objectContaining({ source: 'amd-smi', code: 'NO_PERMISSION', message: expect.stringContaining('render and video groups') })])
  })

  it('gives the meter its readings past the banner too', () => {
    const readings = parseAmdSmiReadings(readFixture('amd/captured/amd-smi-banner-rocm7.1.1.txt') + readFixture('amd/constructed/r9700x4-amd-smi-metric.json'))
    expect(readings.get(0)).toEqual({ utilizationPercent: 97, memoryUsedMiB: 29794, powerDrawW: 281 })
  })

  it('says the same when the banner is all it printed', () => {
    const { gpus, issues } = parseAmdSmi(readFixture('amd/captured/amd-smi-banner-rocm7.1.1.txt'))
    expect(gpus).toEqual([])
    expect(issues.map((i) => i.code)).toEqual(['NO_PERMISSION'])
  })
})

describe('a metric call that fails', () => {
  it('is reported, and the GPUs whose health cannot be read are not offered, with the reason', async () => {
    const result = await amd({ ...R9700, FAKE_AMD_SMI_MODE: 'metric-fail' }).probe()
    expect(result.errors).toEqual([expect.objectContaining({ source: 'amd-smi', code: 'TOOL_FAILED', message: expect.stringMatching(/amd-smi metric failed \(exit 1: "AMDSMI_STATUS_NOT_SUPPORTED/) })])
    const gpus = result.gpus.filter((g) => g.vendor === 'amd')
    expect(gpus.map((g) => g.healthy)).toEqual([false, false, false, false])
    expect(gpus[0]?.problems[0]).toMatch(/its health cannot be read \(amd-smi metric failed .*\), so it is not offered; set probe.allowUnknownHealth/)
  })

  it('is still reported with probe.allowUnknownHealth, which offers the GPUs', async () => {
    const result = await amd({ ...R9700, FAKE_AMD_SMI_MODE: 'metric-fail' }, { allowUnknownHealth: true }).probe()
    expect(result.errors.map((e) => e.code)).toEqual(['TOOL_FAILED'])
    expect(offerableGpus(result)).toHaveLength(4)
  })

  it('has rocm-smi read the health of the same GPUs when it can', async () => {
    const result = await amd({ ...R9700, FAKE_AMD_SMI_MODE: 'metric-fail', FAKE_ROCM_SMI_JSON: 'constructed/r9700x4-rocm-smi.json' }, { rocmSmi: true }).probe()
    expect(result.errors.map((e) => [e.source, e.code])).toEqual([['amd-smi', 'TOOL_FAILED']])
    expect(result.gpus.map((g) => [g.source, g.temperatureC, g.healthy])).toEqual([['amd-smi', 71, true], ['amd-smi', 69, true], ['amd-smi', 70, true], ['amd-smi', 68, true]])
  })
})

describe('the KFD process list, for a daemon that is not root', () => {
  // amd-smi lists other users' processes only to root (ROCm/rocm-systems#8396: "No running processes detected"
  // to a caller without the rights while the GPUs were in use). The KFD's sysfs files are readable by all.
  // The foreign process is a real one (sleep), so its name comes from the real /proc/<pid>/comm.
  let foreign: ChildProcess
  let pid: number
  const made: string[] = []
  beforeAll(() => {
    foreign = spawn('sleep', ['600'], { stdio: 'ignore' })
    if (foreign.pid === undefined) throw new Error('sleep did not start')
    pid = foreign.pid
  })
  afterAll(async () => {
    foreign.kill()
    for (const d of made) await rm(d, { recursive: true, force: true })
  })

  /** The KFD tree of the four R9700s with the foreign process holding 28 GiB on GPU 2 (PCI 83:00.0). */
  async function busyGpu2 (): Promise<string> {
    const root = await kfdSysfs([{ pid, vram: { [KFD_R9700_GPU_IDS[2]]: 28 * 1024 ** 3 } }])
    made.push(root)
    return root
  }

  it('marks the GPU busy that a foreign process holds VRAM on while amd-smi (ROCm 7.2, R9700) lists no process, and offers the others', async () => {
    const result = await amd(R9700_VLLM, { sysfsRoot: await busyGpu2(), uid: 999 }).probe()
    const gpus = result.gpus.filter((g) => g.vendor === 'amd')
    expect(result.errors).toEqual([])
    expect(gpus.map((g) => [g.index, g.pciBusId, g.busy])).toEqual([
      [0, '0000:03:00.0', false], [1, '0000:23:00.0', false], [2, '0000:83:00.0', true], [3, '0000:c3:00.0', false]
    ])
    expect(gpus[2]?.processes).toEqual([{ pid, name: 'sleep', usedMemoryMiB: 28672 }])
    expect(gpus[2]?.problems).toEqual([`in use by process ${pid} (sleep), which is not a gpumesh lease`])
    expect(offerableGpus(result).map((g) => g.index)).toEqual([0, 1, 3])
  })

  it('puts a KFD process on a GPU whose PCI address the tool does not say (the captured MI210 static): it cannot be placed elsewhere', async () => {
    const root = await kfdSysfs([{ pid, vram: { [KFD_R9700_GPU_IDS[0]]: 1024 ** 3 } }])
    made.push(root)
    const result = await amd({ FAKE_AMD_SMI_STATIC: 'captured/amd-smi-static-mi210.json' }, { sysfsRoot: root, uid: 999, allowUnknownHealth: true }).probe()
    expect(result.gpus.map((g) => [g.name, g.pciBusId, g.busy, g.processes])).toEqual([['AMD Instinct MI210', null, true, [{ pid, name: 'sleep', usedMemoryMiB: null }]]])
  })

  it('keeps what amd-smi lists, adds only processes it does not, and lets a lease\'s own processes through', async () => {
    const root = await busyGpu2()
    const listed = await amd({ ...R9700_VLLM, FAKE_AMD_SMI_PROCESS: VLLM_PROCESSES }, { sysfsRoot: root, uid: 0 }).probe()
    expect(listed.gpus[2]?.processes.map((p) => p.pid)).toEqual([...VLLM_PIDS, pid])
    expect(listed.gpus[0]?.processes.map((p) => p.pid)).toEqual(VLLM_PIDS)
    const leased = await new GpuProber({
      amdSmi: bin('amd-smi'), dataDir: fixtures, hostFacts: false, systemInformationFallback: false, sysfsRoot: root, uid: 999,
      leasedPids: () => new Set([pid]), toolEnv: { ...process.env, PATH, ...R9700_VLLM }
    }).probe()
    expect(offerableGpus(leased)).toHaveLength(4)
  })

  it('says in words that other users\' processes may be invisible when the KFD cannot be read and the tool lists none', async () => {
    const noSys = await mkdtemp(join(tmpdir(), 'gpumesh-nosys-'))
    made.push(noSys)
    const result = await amd(R9700_VLLM, { sysfsRoot: noSys, uid: 999 }).probe()
    expect(result.errors).toEqual([{ source: 'kfd', code: 'PROCESSES_HIDDEN', message: expect.stringContaining('other users\' processes on the AMD GPUs may be invisible: this user (uid 999) is not root') }])
    expect(result.errors[0]?.message).toContain(`${join(noSys, 'class/kfd/kfd/topology/nodes')} cannot be read (it does not exist`)
    expect(result.errors[0]?.message).toContain('set probe.sysfsRoot')
    // A warning, not a tool failure: the GPUs are still read, and offered.
    expect(hasToolFailure(result)).toBe(false)
    expect(offerableGpus(result)).toHaveLength(4)
    // Root sees every process in amd-smi: nothing to warn about.
    expect((await amd(R9700_VLLM, { sysfsRoot: noSys, uid: 0 }).probe()).errors).toEqual([])
  })
})
