// The KFD process list (sysfs), read from constructed trees laid out as the amdgpu driver writes them
// (test/fixtures/amd/MANIFEST.md): which processes use which GPU, without root.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readKfdProcesses } from '../../src/probe/index.js'
import { busId } from '../../src/probe/kfd.js'
import { KFD_R9700_GPU_IDS, kfdSysfs } from './helpers.js'

const [GPU0, GPU1, GPU2, GPU3] = KFD_R9700_GPU_IDS
const GiB = 1024 ** 3
const made: string[] = []
let procRoot: string

beforeAll(async () => {
  // Process names come from <procRoot>/<pid>/comm.
  procRoot = await mkdtemp(join(tmpdir(), 'gpumesh-proc-'))
  made.push(procRoot)
  for (const [pid, comm] of [[4101, 'python3'], [4102, 'llama-server'], [4103, 'rocminfo']] as const) {
    await mkdir(join(procRoot, String(pid)))
    await writeFile(join(procRoot, String(pid), 'comm'), `${comm}\n`)
  }
})
afterAll(async () => { for (const d of made) await rm(d, { recursive: true, force: true }) })

async function tree (...args: Parameters<typeof kfdSysfs>): Promise<string> {
  const root = await kfdSysfs(...args)
  made.push(root)
  return root
}

describe('readKfdProcesses', () => {
  it('puts each process on the GPUs it holds VRAM on, by PCI address, with its name and memory there', async () => {
    const sysRoot = await tree([
      { pid: 4101, vram: { [GPU2 as number]: 29 * GiB } },
      { pid: 4102, vram: { [GPU0 as number]: 3 * GiB, [GPU3 as number]: 512 * 1024 ** 2 } }
    ])
    const r = await readKfdProcesses({ sysRoot, procRoot })
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(Object.fromEntries(r.byBusId)).toEqual({
      '0000:03:00.0': [{ pid: 4102, name: 'llama-server', usedMemoryMiB: 3072 }],
      '0000:83:00.0': [{ pid: 4101, name: 'python3', usedMemoryMiB: 29696 }],
      '0000:c3:00.0': [{ pid: 4102, name: 'llama-server', usedMemoryMiB: 512 }]
    })
  })

  it('counts a queue on a GPU as use, its memory there unknown', async () => {
    const sysRoot = await tree([{ pid: 4101, queues: [GPU1 as number] }])
    const r = await readKfdProcesses({ sysRoot, procRoot })
    expect(r.ok && Object.fromEntries(r.byBusId)).toEqual({ '0000:23:00.0': [{ pid: 4101, name: 'python3', usedMemoryMiB: null }] })
  })

  it('ignores a process that opened /dev/kfd but holds nothing on any GPU (rocminfo, a runtime probing devices)', async () => {
    const sysRoot = await tree([{ pid: 4103 }])
    const r = await readKfdProcesses({ sysRoot, procRoot })
    expect(r).toEqual({ ok: true, byBusId: new Map() })
  })

  it('names no process whose comm cannot be read (it exited, or another PID namespace)', async () => {
    const sysRoot = await tree([{ pid: 999999, vram: { [GPU1 as number]: GiB } }])
    const r = await readKfdProcesses({ sysRoot, procRoot })
    expect(r.ok && r.byBusId.get('0000:23:00.0')).toEqual([{ pid: 999999, name: null, usedMemoryMiB: 1024 }])
  })

  it('skips files that do not hold a number, and entries that are not process ids', async () => {
    const sysRoot = await tree([{ pid: 4101, vram: { [GPU2 as number]: GiB } }])
    await writeFile(join(sysRoot, 'class/kfd/kfd/proc/4101', `vram_${GPU0 as number}`), 'garbage\n')
    await mkdir(join(sysRoot, 'class/kfd/kfd/proc/self'))
    const r = await readKfdProcesses({ sysRoot, procRoot })
    expect(r.ok && Object.fromEntries(r.byBusId)).toEqual({ '0000:83:00.0': [{ pid: 4101, name: 'python3', usedMemoryMiB: 1024 }] })
  })

  it('says where and why when there is no KFD', async () => {
    const sysRoot = await mkdtemp(join(tmpdir(), 'gpumesh-nosys-'))
    made.push(sysRoot)
    const r = await readKfdProcesses({ sysRoot, procRoot })
    expect(r).toEqual({ ok: false, path: join(sysRoot, 'class/kfd/kfd/topology/nodes'), reason: expect.stringContaining('does not exist') })
    await mkdir(join(sysRoot, 'class/kfd/kfd/topology/nodes'), { recursive: true })
    expect(await readKfdProcesses({ sysRoot, procRoot })).toEqual({ ok: false, path: join(sysRoot, 'class/kfd/kfd/proc'), reason: expect.stringContaining('does not exist') })
  })
})

describe('busId', () => {
  it('reads the PCI address from the topology\'s domain and location_id (bus << 8 | devfn)', () => {
    expect(busId(0, 0x8300)).toBe('0000:83:00.0')
    expect(busId(1, (0xc1 << 8) | (2 << 3) | 1)).toBe('0001:c1:02.1')
    // A partitioned GPU (MI300X in CPX mode) or-s the partition into bits 28-31: the same PCI device.
    expect(busId(0, (3 << 28) | 0x0c00)).toBe('0000:0c:00.0')
  })
})
