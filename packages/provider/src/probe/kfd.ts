// Which processes use which AMD GPU, read from the amdgpu driver's KFD in sysfs. Unlike `amd-smi process`,
// which lists other users' processes only to root, these files are readable by every user.
//
// What the kernel exposes (drivers/gpu/drm/amd/amdkfd):
// - kfd_process.c: one directory `proc/<pid>` per process that opened /dev/kfd (the pid of its lead thread,
//   as the host sees it), holding `vram_<gpu_id>` per GPU the process has a device context on: the bytes of
//   VRAM it holds there (`%llu\n`, kfd_procfs_show), and `queues/<queue id>/gpuid`: the GPU each of its
//   queues runs on (`%u`, kfd_procfs_queue_show). Files are created mode 0444 (KFD_SYSFS_FILE_MODE).
//   A process gets a `vram_<gpu_id>` file for every GPU it can see, with 0 where it holds nothing; so a GPU
//   is used by a process that holds VRAM on it or runs a queue on it.
// - kfd_topology.c: `topology/nodes/<n>/gpu_id` (`%u`, 0 for a CPU node) and `topology/nodes/<n>/properties`,
//   one `name value` line each (`%s %u\n`); `location_id` is pci_dev_id() of the GPU (bus << 8 | devfn; on a
//   partitioned GPU the partition is or-ed into bits 28-31), `domain` its PCI domain.
// rocm_smi_lib (src/rocm_smi_kfd.cc) reads the same two trees, /sys/class/kfd/kfd/proc and
// /sys/class/kfd/kfd/topology/nodes, for `rocm-smi --showpids`.
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { GpuProcess } from './types.js'

/** Where sysfs and procfs are mounted; tests point these at directory trees. */
export interface KfdReadOptions {
  /** Default `/sys`. */
  sysRoot?: string | undefined
  /** Default `/proc`: the process names come from `<procRoot>/<pid>/comm`. */
  procRoot?: string | undefined
}

/** The processes using each AMD GPU by PCI address (`dddd:bb:dd.f`), or why they could not be read. */
export type KfdProcesses =
  | { ok: true, byBusId: Map<string, GpuProcess[]> }
  | { ok: false, path: string, reason: string }

/** No host has more; entries beyond are not read (each costs a few small reads). */
const MAX_KFD_PROCESSES = 4096
const MAX_KFD_NODES = 256
/** Every file read here holds one number or a few dozen `name value` lines. */
const MAX_FILE_BYTES = 8192

/** The KFD directory under a sysfs root. */
export function kfdDir (sysRoot = '/sys'): string {
  return join(sysRoot, 'class', 'kfd', 'kfd')
}

/**
 * Reads the KFD's process list and maps each GPU id to its PCI address through the topology. Never
 * throws: a missing or unreadable tree is `{ ok: false }` with the reason; a process that exits while it is
 * read is skipped.
 */
export async function readKfdProcesses (options: KfdReadOptions = {}): Promise<KfdProcesses> {
  const base = kfdDir(options.sysRoot)
  const procDir = join(base, 'proc')
  const nodesDir = join(base, 'topology', 'nodes')
  let busOf: Map<number, string>
  let pids: number[]
  try {
    busOf = await readTopology(nodesDir)
  } catch (err) {
    return { ok: false, path: nodesDir, reason: describe(err) }
  }
  try {
    pids = (await readdir(procDir)).filter((e) => /^\d{1,10}$/.test(e)).map(Number).slice(0, MAX_KFD_PROCESSES)
  } catch (err) {
    return { ok: false, path: procDir, reason: describe(err) }
  }
  const byBusId = new Map<string, GpuProcess[]>()
  for (const pid of pids) {
    const use = await readProcessUse(join(procDir, String(pid)))
    if (use.size === 0) continue
    const name = await readSmall(join(options.procRoot ?? '/proc', String(pid), 'comm')).then((t) => t.trim() || null, () => null)
    for (const [gpuId, bytes] of use) {
      const bus = busOf.get(gpuId)
      if (bus === undefined) continue
      const list = byBusId.get(bus) ?? []
      list.push({ pid, name, usedMemoryMiB: bytes != null ? Math.round(bytes / 1048576) : null })
      byBusId.set(bus, list)
    }
  }
  return { ok: true, byBusId }
}

/** GPU id → PCI address of every GPU node. Throws when the nodes directory cannot be listed. */
async function readTopology (nodesDir: string): Promise<Map<number, string>> {
  const out = new Map<number, string>()
  const nodes = (await readdir(nodesDir)).filter((e) => /^\d{1,4}$/.test(e)).slice(0, MAX_KFD_NODES)
  for (const node of nodes) {
    const dir = join(nodesDir, node)
    const gpuId = await readSmall(join(dir, 'gpu_id')).then(unsigned, () => null)
    if (gpuId == null || gpuId === 0) continue // a CPU node
    const props = await readSmall(join(dir, 'properties')).then(properties, () => new Map<string, number>())
    const location = props.get('location_id')
    if (location === undefined) continue
    out.set(gpuId, busId(props.get('domain') ?? 0, location))
  }
  return out
}

/** GPU id → bytes of VRAM held there (null: it runs a queue there, VRAM unknown), for GPUs the process uses. */
async function readProcessUse (dir: string): Promise<Map<number, number | null>> {
  const use = new Map<number, number | null>()
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch {
    return use // exited meanwhile
  }
  for (const e of entries) {
    const m = /^vram_(\d{1,10})$/.exec(e)
    if (m?.[1] == null) continue
    const bytes = await readSmall(join(dir, e)).then(unsigned, () => null)
    if (bytes != null && bytes > 0) use.set(Number(m[1]), bytes)
  }
  const queues = await readdir(join(dir, 'queues')).catch(() => [] as string[])
  for (const q of queues.slice(0, MAX_KFD_PROCESSES)) {
    if (!/^\d{1,10}$/.test(q)) continue
    const gpuId = await readSmall(join(dir, 'queues', q, 'gpuid')).then(unsigned, () => null)
    if (gpuId != null && gpuId !== 0 && !use.has(gpuId)) use.set(gpuId, null)
  }
  return use
}

/** `dddd:bb:dd.f` from a PCI domain and the KFD's location_id (bus << 8 | devfn, partition in bits 28-31). */
export function busId (domain: number, locationId: number): string {
  const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
  const bus = (locationId >>> 8) & 0xff
  const devfn = locationId & 0xff
  return `${hex(domain & 0xffff, 4)}:${hex(bus, 2)}:${hex(devfn >>> 3, 2)}.${devfn & 7}`
}

/** The `name value` lines of a topology `properties` file, values as unsigned integers. */
function properties (text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^([a-z_0-9]+)\s+(\d{1,20})\s*$/.exec(line.trim())
    if (m?.[1] != null && m[2] != null) out.set(m[1], Number(m[2]))
  }
  return out
}

function unsigned (text: string): number | null {
  const t = text.trim()
  return /^\d{1,20}$/.test(t) ? Number(t) : null
}

/** At most MAX_FILE_BYTES of a file (sysfs files are small; anything longer is cut). */
async function readSmall (path: string): Promise<string> {
  const handle = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(MAX_FILE_BYTES)
    const { bytesRead } = await handle.read(buffer, 0, MAX_FILE_BYTES, 0)
    return buffer.subarray(0, bytesRead).toString('utf8')
  } finally {
    await handle.close()
  }
}

function describe (err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return 'it does not exist (the amdgpu driver is not loaded with KFD, or /sys is not the host\'s)'
  if (code === 'EACCES' || code === 'EPERM') return 'this user may not read it'
  return (err as Error).message
}
