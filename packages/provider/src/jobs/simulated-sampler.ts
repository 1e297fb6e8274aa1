import type { GpuSample, SampleGpus } from './types.js'

/**
 * Synthetic readings for simulated GPUs (never for real ones): a steady busy GPU with a little
 * deterministic wobble, so periods have plausible utilisation, memory and energy figures.
 */
export function simulatedGpuSampler (options: { memoryMiB?: number, powerW?: number } = {}): SampleGpus {
  const memory = options.memoryMiB ?? 40_000
  const power = options.powerW ?? 300
  let tick = 0
  return async (uuids: readonly string[]): Promise<GpuSample[]> => {
    tick++
    return uuids.map((uuid, i) => {
      const wobble = ((tick + i) % 7) - 3
      return { uuid, utilizationPercent: 90 + wobble, memoryUsedMiB: memory + wobble * 100, powerDrawW: power + wobble * 5 }
    })
  }
}
