import { readFileSync } from 'node:fs'
import { cp, mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GpuProber, type ProbeOptions } from '../../src/probe/index.js'

export const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url))
export const bin = (name: string): string => `${fixtures}bin/${name}`
export const readFixture = (path: string): string => readFileSync(`${fixtures}${path}`, 'utf8')

/** A capture without its '#' comment lines. */
export const captureRows = (path: string): string =>
  readFixture(path).split('\n').filter((l) => !l.startsWith('#')).join('\n')

/** The field list of a capture, from its '# nvidia-smi --query-gpu=' head line. */
export const captureFields = (path: string): string[] =>
  (/--query-gpu=(\S+)/.exec(readFixture(path))?.[1] ?? '').split(',')

/** A prober running the stand-in nvidia-smi with `env`, amd-smi/rocm-smi from PATH, no host facts. */
export function standInProber (env: Record<string, string>, options: Partial<ProbeOptions> = {}): GpuProber {
  return new GpuProber({
    nvidiaSmi: bin('nvidia-smi'),
    dataDir: fixtures,
    hostFacts: false,
    systemInformationFallback: false,
    toolEnv: { ...process.env, ...env },
    ...options
  })
}

/** The KFD GPU ids of the constructed tree `amd/constructed/kfd-r9700x4` (MANIFEST.md), by GPU index (PCI bus 03, 23, 83, c3). */
export const KFD_R9700_GPU_IDS = [11433, 40398, 2856, 64277] as const

export interface KfdProcessSpec {
  pid: number
  /** Bytes of VRAM per KFD GPU id; every other GPU of the tree gets a `vram_<id>` of 0, as the driver writes. */
  vram?: Record<number, number>
  /** KFD GPU ids of the process's queues (`queues/<n>/gpuid`). */
  queues?: number[]
}

/**
 * A sysfs root in a new temp dir: the constructed KFD topology of four R9700s with `processes` under
 * `class/kfd/kfd/proc`, laid out as drivers/gpu/drm/amd/amdkfd/kfd_process.c creates it.
 */
export async function kfdSysfs (processes: KfdProcessSpec[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'gpumesh-sysfs-'))
  await cp(`${fixtures}amd/constructed/kfd-r9700x4`, root, { recursive: true })
  for (const p of processes) {
    const dir = join(root, 'class/kfd/kfd/proc', String(p.pid))
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'pasid'), `${32768 + (p.pid % 1000)}\n`)
    for (const id of KFD_R9700_GPU_IDS) {
      await writeFile(join(dir, `vram_${id}`), `${p.vram?.[id] ?? 0}\n`)
      await writeFile(join(dir, `sdma_${id}`), '0\n')
    }
    for (const [i, id] of (p.queues ?? []).entries()) {
      await mkdir(join(dir, 'queues', String(i)), { recursive: true })
      await writeFile(join(dir, 'queues', String(i), 'gpuid'), String(id))
    }
  }
  return root
}
