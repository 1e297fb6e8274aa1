import { statfs } from 'node:fs/promises'
import { arch, hostname, platform } from 'node:os'
import { dirname, resolve } from 'node:path'
import si from 'systeminformation'
import type { HostInfo } from './types.js'

type StaticHost = Pick<HostInfo, 'hostname' | 'os' | 'cpu' | 'memoryTotalMiB'>

const MiB = 1024 * 1024

/** Free space (MiB) of the file system holding `dir`, or of its nearest existing ancestor. */
export async function diskFreeMiB (dir: string): Promise<number | null> {
  let current = resolve(dir)
  for (;;) {
    try {
      const s = await statfs(current)
      return Math.floor((Number(s.bavail) * Number(s.bsize)) / MiB)
    } catch {
      const parent = dirname(current)
      if (parent === current) return null
      current = parent
    }
  }
}

/**
 * Host facts from systeminformation (CPU, memory, OS) and statfs (disk). The parts that do not change
 * are read once and kept.
 */
export class HostFacts {
  private staticPart: Promise<StaticHost> | undefined

  async read (dataDir: string): Promise<HostInfo> {
    this.staticPart ??= readStatic()
    const [fixed, mem, disk] = await Promise.all([
      this.staticPart,
      si.mem().catch(() => null),
      diskFreeMiB(dataDir)
    ])
    return {
      ...fixed,
      memoryTotalMiB: fixed.memoryTotalMiB ?? (mem != null ? Math.floor(mem.total / MiB) : null),
      memoryAvailableMiB: mem != null ? Math.floor(mem.available / MiB) : null,
      dataDir: resolve(dataDir),
      diskFreeMiB: disk
    }
  }
}

async function readStatic (): Promise<StaticHost> {
  const [cpu, os, mem] = await Promise.all([
    si.cpu().catch(() => null),
    si.osInfo().catch(() => null),
    si.mem().catch(() => null)
  ])
  const model = cpu != null ? [cpu.manufacturer, cpu.brand].filter((s) => s !== '').join(' ').trim() : ''
  return {
    hostname: os?.hostname !== undefined && os.hostname !== '' ? os.hostname : hostname(),
    os: {
      platform: os?.platform ?? platform(),
      distro: nonEmpty(os?.distro),
      release: nonEmpty(os?.release),
      kernel: nonEmpty(os?.kernel),
      arch: os?.arch ?? arch()
    },
    cpu: {
      model: model !== '' ? model : null,
      cores: cpu?.cores ?? null,
      physicalCores: cpu?.physicalCores ?? null
    },
    memoryTotalMiB: mem != null ? Math.floor(mem.total / MiB) : null
  }
}

function nonEmpty (s: string | undefined): string | null {
  return s !== undefined && s !== '' && s.toLowerCase() !== 'unknown' ? s : null
}

/** A host with nothing known but the name, for when host facts are switched off. */
export function minimalHost (dataDir: string): HostInfo {
  return {
    hostname: hostname(),
    os: { platform: platform(), distro: null, release: null, kernel: null, arch: arch() },
    cpu: { model: null, cores: null, physicalCores: null },
    memoryTotalMiB: null,
    memoryAvailableMiB: null,
    dataDir: resolve(dataDir),
    diskFreeMiB: null
  }
}
