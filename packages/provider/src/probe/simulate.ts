import type { GpuClassTable } from './gpu-classes.js'
import { unmeasuredReadings, type RawGpu, type SimulatedGpuSpec } from './types.js'

/**
 * GPUs made up from `probe.simulate` (models as `GpuClassTable.resolveName` reads them), with stable UUIDs `GPU-sim-<class>-<n>` and the class's memory.
 * Live readings are idle values; nothing here pretends to be measured. The compute capability is the
 * class's (config/gpu-classes.json), so orders with `minComputeCapability` can match simulated GPUs.
 */
export function simulatedGpus (specs: readonly SimulatedGpuSpec[], classes: GpuClassTable | null, firstIndex: number): RawGpu[] {
  const counters = new Map<string, number>()
  const out: RawGpu[] = []
  let index = firstIndex
  for (const spec of specs) {
    const c = classes?.resolveName(spec.model).spec
    const slug = (c?.class ?? spec.model).replace(/[^A-Za-z0-9.-]+/g, '-')
    for (let i = 0; i < spec.count; i++) {
      const n = counters.get(slug) ?? 0
      counters.set(slug, n + 1)
      out.push({
        uuid: `GPU-sim-${slug}-${n}`,
        index: index++,
        vendor: c?.vendor ?? 'unknown',
        name: c?.displayName ?? spec.model,
        source: 'simulation',
        pciBusId: null,
        memoryTotalMiB: c?.memoryMiB ?? null,
        memoryUsedMiB: c != null ? 0 : null,
        utilizationPercent: 0,
        ...unmeasuredReadings(),
        powerLimitW: c?.tdpW ?? null,
        computeCapability: c?.computeCapability ?? null,
        migEnabled: false
      })
    }
  }
  return out
}
