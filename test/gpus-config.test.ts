/**
 * `gpumesh gpus` as a child process (the built CLI: `npx tsc -b` first) with configuration mistakes a
 * new operator makes: a GPU tool path that does not exist, and simulated GPUs named the way people
 * write them. The GPU tools are the stand-ins printing captured output (packages/provider/test/fixtures).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from './cli-helpers.js'

const fixtures = fileURLToPath(new URL('../packages/provider/test/fixtures/bin/', import.meta.url))
/** Four R9700s seen by the amd-smi stand-in (packages/provider/test/fixtures/amd/MANIFEST.md). */
const R9700 = {
  FAKE_AMD_SMI_STATIC: 'constructed/r9700x4-amd-smi-static.json',
  FAKE_AMD_SMI_METRIC: 'constructed/r9700x4-amd-smi-metric.json',
  FAKE_AMD_SMI_PROCESS: 'captured/amd-smi-process-r9700x4-vllm-rocm7.2.json'
}

let home: string
beforeAll(async () => { home = await mkdtemp(join(tmpdir(), 'gpumesh-gpus-config-')) })
afterAll(async () => { await rm(home, { recursive: true, force: true }) })

const env = (extra: Record<string, string>): NodeJS.ProcessEnv => ({ PATH: process.env.PATH ?? '', GPUMESH_HOME: home, ...extra })

describe('gpumesh gpus with a GPU tool that is not there', () => {
  it('names the environment variable, exits 2, and still prints what the other tool found', async () => {
    const r = await runCli(['gpus', '--json'], { env: env({ GPUMESH_NVIDIA_SMI: join(home, 'no-such-nvidia-smi'), GPUMESH_AMD_SMI: join(fixtures, 'amd-smi'), ...R9700 }) })
    expect(r.code).toBe(2)
    const out = JSON.parse(r.stdout) as { gpus: Array<{ class: string }>, errors: Array<{ source: string, code: string }> }
    expect(out.gpus.map((g) => g.class)).toEqual(['R9700', 'R9700', 'R9700', 'R9700'])
    expect(out.errors).toEqual([expect.objectContaining({ source: 'nvidia-smi', code: 'TOOL_NOT_FOUND' })])
    expect(r.stderr).toBe(`gpumesh: nvidia-smi as named by GPUMESH_NVIDIA_SMI: ${join(home, 'no-such-nvidia-smi')} was not found. Correct GPUMESH_NVIDIA_SMI, or unset it so nvidia-smi is looked up on PATH.\n`)
  })

  it('names the config key in table mode, after the table of the GPUs the other tool found', async () => {
    const config = join(home, 'missing-amd.yaml')
    await writeFile(config, `probe:\n  amdSmi: ${join(home, 'no-such-amd-smi')}\n`)
    const r = await runCli(['gpus', '--config', config], { env: env({ GPUMESH_NVIDIA_SMI: join(fixtures, 'nvidia-smi'), FAKE_SMI_CAPTURE: 'h100x8.csv' }) })
    expect(r.code).toBe(2)
    expect(r.stdout).toContain('8 of 8 GPUs can be offered.')
    expect(r.stderr).toContain(`gpumesh: amd-smi as named by probe.amdSmi: ${join(home, 'no-such-amd-smi')} was not found. Correct probe.amdSmi, or unset it`)
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/)
  })

  it('still exits 3 when a tool that exists fails', async () => {
    const r = await runCli(['gpus'], { env: env({ GPUMESH_NVIDIA_SMI: join(fixtures, 'nvidia-smi'), FAKE_SMI_MODE: 'exit9' }) })
    expect(r.code).toBe(3)
  })
})

describe('gpumesh gpus with probe.simulate', () => {
  const simulate = async (model: string): Promise<{ code: number | null, classes: string[], stderr: string }> => {
    const config = join(home, 'simulate.yaml')
    await writeFile(config, `probe:\n  simulate: [{ model: ${model}, count: 2 }]\n`)
    const r = await runCli(['gpus', '--json', '--config', config], { env: env({ GPUMESH_NVIDIA_SMI: join(fixtures, 'nvidia-smi'), FAKE_SMI_MODE: 'nodevices' }) })
    const classes = r.code === 0 ? (JSON.parse(r.stdout) as { gpus: Array<{ class: string, simulated: boolean }> }).gpus.filter((g) => g.simulated).map((g) => g.class) : []
    return { code: r.code, classes, stderr: r.stderr }
  }

  it('makes GPUs of the class a plain H100 or A100 80GB names, never of class unknown', async () => {
    expect(await simulate('H100')).toMatchObject({ code: 0, classes: ['H100-SXM-80GB', 'H100-SXM-80GB'] })
    expect(await simulate('"A100 80GB"')).toMatchObject({ code: 0, classes: ['A100-PCIE-80GB', 'A100-PCIE-80GB'] })
  })

  it('refuses a model it cannot place, exit 2, listing the classes', async () => {
    const r = await simulate('Z9000')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/probe\.simulate\.0\.model is "Z9000" but must be a GPU class \(GB200, B200, .*H100-SXM-80GB/)
  })
})
