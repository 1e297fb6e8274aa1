// Runs the built CLI as a real child process (build first: npx tsc -b), with stand-in GPU tools.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, type CliRun } from '../../../test/cli-helpers.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const standIn = join(root, 'packages/provider/test/fixtures/bin/nvidia-smi')
const amdStandIn = join(root, 'packages/provider/test/fixtures/bin/amd-smi')

let home: string
beforeAll(async () => { home = await mkdtemp(join(tmpdir(), 'gpumesh-cli-gpus-')) })
afterAll(async () => { await rm(home, { recursive: true, force: true }) })


async function gpumesh (args: string[], env: Record<string, string>, user: { uid?: number, gid?: number } = {}): Promise<CliRun> {
  return await runCli(args, { env: { PATH: process.env.PATH ?? '', GPUMESH_HOME: home, GPUMESH_NVIDIA_SMI: standIn, ...env }, timeoutMs: 20_000, ...user })
}

describe('gpumesh gpus', () => {
  it('prints the 8× H100 inventory as JSON and exits 0', async () => {
    const r = await gpumesh(['gpus', '--json'], { FAKE_SMI_CAPTURE: 'h100x8.csv' })
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as { host: { hostname: string }, gpus: Array<Record<string, unknown>>, errors: unknown[] }
    expect(out.errors).toEqual([])
    expect(typeof out.host.hostname).toBe('string')
    expect(out.gpus).toHaveLength(8)
    expect(out.gpus[0]).toMatchObject({
      uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1', index: 0, vendor: 'nvidia', name: 'NVIDIA H100 80GB HBM3',
      class: 'H100-SXM-80GB', memoryTotalMiB: 81559, memoryUsedMiB: 1, utilizationPercent: 0, temperatureC: 30,
      powerDrawW: 100.89, powerLimitW: 700, computeCapability: '9.0', driverVersion: '565.57.01', migEnabled: false,
      migDevices: [], eccErrors: { corrected: 0, uncorrected: 0 }, healthy: true, busy: false, problems: [], simulated: false
    })
  })

  it('keeps unknown values null in JSON', async () => {
    const r = await gpumesh(['gpus', '--json'], { FAKE_SMI_CAPTURE: 'rtx4090x1.csv' })
    const out = JSON.parse(r.stdout) as { gpus: Array<Record<string, unknown>> }
    expect(out.gpus[0]).toMatchObject({ class: 'RTX-4090', migEnabled: null, eccErrors: { corrected: null, uncorrected: null } })
  })

  it('exits 3 with the cause in errors when the driver is not loaded', async () => {
    const r = await gpumesh(['gpus', '--json'], { FAKE_SMI_MODE: 'exit9' })
    expect(r.code).toBe(3)
    const out = JSON.parse(r.stdout) as { gpus: unknown[], errors: Array<{ source: string, code: string, message: string }> }
    expect(out.gpus).toEqual([])
    expect(out.errors).toEqual([expect.objectContaining({ source: 'nvidia-smi', code: 'DRIVER_NOT_LOADED' })])
  })

  it('exits 3 in table mode with a sentence and no stack trace', async () => {
    const r = await gpumesh(['gpus'], { FAKE_SMI_MODE: 'exit18' })
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('Driver/library version mismatch')
    expect(r.stderr + r.stdout).not.toMatch(/\n\s+at .+:\d+:\d+/)
  })

  it('exits 3 on a hang past probe.timeoutMs from --config', async () => {
    const config = join(home, 'fast.yaml')
    await writeFile(config, 'probe:\n  timeoutMs: 300\n')
    const started = Date.now()
    const r = await gpumesh(['gpus', '--config', config], { FAKE_SMI_MODE: 'hang' })
    expect(r.code).toBe(3)
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(r.stderr).toContain('did not answer within 300 ms')
  })

  it('says so plainly when there are no GPUs, and exits 0', async () => {
    const r = await gpumesh(['gpus'], { FAKE_SMI_MODE: 'nodevices' })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('No GPUs found')
  })

  it('shows simulated GPUs only when configured, labelled', async () => {
    const config = join(home, 'sim.yaml')
    await writeFile(config, 'probe:\n  simulate:\n    - model: H100-SXM-80GB\n      count: 2\n')
    const table = await gpumesh(['gpus', '--config', config], { FAKE_SMI_MODE: 'nodevices' })
    expect(table.code).toBe(0)
    expect(table.stdout).toContain('GPU-sim-H100-SXM-80GB-1')
    expect(table.stdout).toContain('(simulated)')
    const json = JSON.parse((await gpumesh(['gpus', '--json', '--config', config], { FAKE_SMI_MODE: 'nodevices' })).stdout) as { gpus: Array<{ simulated: boolean }> }
    expect(json.gpus.map((g) => g.simulated)).toEqual([true, true])
  })

  describe('on an AMD host', () => {
    // Four R9700s under a live vLLM workload, amd-smi 26.2.1 of ROCm 7.2 (captured: test/fixtures/amd/MANIFEST.md); no NVIDIA GPU.
    const r9700 = {
      GPUMESH_AMD_SMI: amdStandIn,
      FAKE_SMI_MODE: 'nodevices',
      FAKE_AMD_SMI_STATIC: 'captured/amd-smi-static-r9700x4-rocm7.2.json',
      FAKE_AMD_SMI_METRIC: 'captured/amd-smi-metric-ecc-r9700x4-rocm7.2.json',
      FAKE_AMD_SMI_PROCESS: 'captured/amd-smi-process-r9700x4-vllm-rocm7.2.json'
    }

    it('lists the foreign processes per GPU, as for NVIDIA, and offers none', async () => {
      const table = await gpumesh(['gpus'], r9700)
      expect(table.code).toBe(0)
      expect(table.stdout).toContain('busy: in use by process 1882331 (/usr/bin/python3.12), which is not a gpumesh lease; in use by process 1883200')
      expect(table.stdout).toContain('in use by process 1883508 (/usr/bin/python3.12), which is not a gpumesh lease\n')
      expect(table.stdout).toContain('0 of 4 GPUs can be offered.')
      const json = JSON.parse((await gpumesh(['gpus', '--json'], r9700)).stdout) as { gpus: Array<Record<string, unknown>> }
      expect(json.gpus[0]).toMatchObject({ class: 'R9700', busy: true, healthy: true, powerLimitW: 300, driverVersion: '6.16.6' })
      // amd-smi 26.2 lists each process's total under every GPU: what one GPU holds is unknown.
      expect(json.gpus[0]?.processes).toContainEqual({ pid: 1883505, name: '/usr/bin/python3.12', usedMemoryMiB: null })
    })

    it('reads the JSON after the permission banner of a user outside the render and video groups, and says what to do', async () => {
      const r = await gpumesh(['gpus'], { ...r9700, FAKE_AMD_SMI_BANNER: 'captured/amd-smi-banner-rocm6.4.txt' })
      expect(r.code).toBe(3)
      expect(r.stdout).toContain('0 of 4 GPUs can be offered.')
      expect(r.stderr).toContain('gpumesh: amd-smi: amd-smi cannot open the GPU device nodes as this user')
      expect(r.stderr).toContain('sudo usermod -aG render,video <user>')
      expect(r.stderr).not.toContain('Unexpected token')
    })

    describe('run as a user that is not root, which amd-smi shows only its own processes', () => {
      // The AMD driver's KFD process list (sysfs, a tree constructed from the kernel's layout: MANIFEST.md) shows a
      // real foreign process (sleep) holding 28 GiB of VRAM on GPU 2, while amd-smi says "No running processes detected".
      const { FAKE_AMD_SMI_PROCESS: _, ...noProcesses } = r9700
      let foreign: ChildProcess
      let sysfs: string
      beforeAll(async () => {
        foreign = spawn('sleep', ['600'], { stdio: 'ignore' })
        sysfs = await mkdtemp(join(tmpdir(), 'gpumesh-cli-sysfs-'))
        await cp(join(root, 'packages/provider/test/fixtures/amd/constructed/kfd-r9700x4'), sysfs, { recursive: true })
        const proc = join(sysfs, 'class/kfd/kfd/proc', String(foreign.pid))
        await mkdir(proc)
        // One vram_<gpu id> per GPU of the tree, as the driver writes them; GPU 2 (PCI 83:00.0) has KFD id 2856.
        for (const [id, bytes] of [[11433, 0], [40398, 0], [2856, 28 * 1024 ** 3], [64277, 0]]) await writeFile(join(proc, `vram_${id}`), `${bytes}\n`)
      })
      afterAll(async () => {
        foreign.kill()
        await rm(sysfs, { recursive: true, force: true })
      })

      it('lists the foreign process on its GPU from the KFD and offers the other three', async () => {
        const table = await gpumesh(['gpus'], { ...noProcesses, GPUMESH_SYSFS_ROOT: sysfs })
        expect(table.code).toBe(0)
        expect(table.stdout).toContain(`busy: in use by process ${foreign.pid} (sleep), which is not a gpumesh lease\n`)
        expect(table.stdout).toContain('3 of 4 GPUs can be offered.')
        const json = JSON.parse((await gpumesh(['gpus', '--json'], { ...noProcesses, GPUMESH_SYSFS_ROOT: sysfs })).stdout) as { gpus: Array<{ busy: boolean, processes: unknown[] }> }
        expect(json.gpus.map((g) => g.busy)).toEqual([false, false, true, false])
        expect(json.gpus[2]?.processes).toEqual([{ pid: foreign.pid, name: 'sleep', usedMemoryMiB: 28672 }])
      })

      it('warns that other users\' processes may be invisible when the KFD cannot be read', async () => {
        // Run as nobody where the tests run as root, so the CLI is not root either way.
        const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
        const open = await mkdtemp(join(tmpdir(), 'gpumesh-cli-nobody-'))
        await chmod(open, 0o777)
        try {
          const r = await gpumesh(['gpus', '--data-dir', open], { ...noProcesses, GPUMESH_SYSFS_ROOT: join(open, 'no-sys') }, user)
          expect(r.code).toBe(0)
          expect(r.stdout).toContain('4 of 4 GPUs can be offered.')
          expect(r.stderr).toContain('gpumesh: kfd: other users\' processes on the AMD GPUs may be invisible')
          expect(r.stderr).toContain('a GPU busy with another user\'s work may be offered')
        } finally {
          await rm(open, { recursive: true, force: true })
        }
      })
    })

    it('says why a GPU is not offered when amd-smi metric fails', async () => {
      const r = await gpumesh(['gpus'], { ...r9700, FAKE_AMD_SMI_MODE: 'metric-fail' })
      expect(r.code).toBe(3)
      expect(r.stdout).toContain('unhealthy: its health cannot be read (amd-smi metric failed')
      expect(r.stderr).toContain('amd-smi metric failed (exit 1')
    })
  })

  it('exits 2 on an unknown option', async () => {
    const r = await gpumesh(['gpus', '--bogus'], {})
    expect(r.code).toBe(2)
  })
})
