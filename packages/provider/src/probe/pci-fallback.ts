import si from 'systeminformation'
import { unmeasuredReadings, type RawGpu } from './types.js'

/**
 * Last resort when no vendor tool exists: GPUs seen on the PCI bus by systeminformation (lspci).
 * It cannot tell health, UUID or ECC, so these GPUs are listed but judged unhealthy; onboard display
 * chips (ASPEED, Matrox, Intel) are left out, and its VRAM guess is ignored.
 */
export async function probePciFallback (): Promise<RawGpu[]> {
  const graphics = await si.graphics()
  return graphics.controllers
    .filter((c) => /nvidia|advanced micro devices|\bamd\b|\bati\b/i.test(c.vendor ?? ''))
    .map((c, i) => {
      const bus = c.pciBus ?? c.busAddress ?? null
      const vendor = /nvidia/i.test(c.vendor) ? 'nvidia' as const : 'amd' as const
      return {
        uuid: `PCI-${bus ?? `unknown-${i}`}`,
        index: null,
        vendor,
        name: [c.vendor, c.model].filter((s) => s != null && s !== '').join(' ') || 'GPU',
        source: 'systeminformation' as const,
        pciBusId: bus,
        memoryTotalMiB: null,
        memoryUsedMiB: null,
        utilizationPercent: null,
        ...unmeasuredReadings()
      }
    })
}
