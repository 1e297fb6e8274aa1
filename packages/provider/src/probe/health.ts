import type { GpuInfo, RawGpu } from './types.js'

export interface HealthOptions {
  maxTemperatureC: number
  /** PIDs belonging to gpumesh leases. */
  leasedPids: ReadonlySet<number>
}

export type HealthVerdict = Pick<GpuInfo, 'healthy' | 'busy' | 'problems'>

/**
 * Judges one GPU. Unhealthy: uncorrected ECC errors, retired pages pending, a row-remap failure, a
 * temperature at or above the limit. Busy: a process that is not a gpumesh lease uses it.
 * Vanished GPUs are judged by the prober, which knows the previous probe.
 */
export function judgeGpu (gpu: RawGpu, options: HealthOptions): HealthVerdict {
  const problems: string[] = []
  let healthy = true
  const unhealthy = (why: string): void => {
    healthy = false
    problems.push(why)
  }
  const uncorrected = gpu.eccErrors.uncorrected
  if (uncorrected != null && uncorrected > 0) unhealthy(`${uncorrected} uncorrected ECC error${uncorrected === 1 ? '' : 's'}`)
  if (gpu.retiredPagesPending === true) unhealthy('retired memory pages are pending a GPU reset')
  if (gpu.rowRemapFailure === true) unhealthy('memory row remapping failed')
  if (gpu.temperatureC != null && gpu.temperatureC >= options.maxTemperatureC) {
    unhealthy(`temperature ${gpu.temperatureC} °C is at or above the limit of ${options.maxTemperatureC} °C`)
  }
  if (gpu.source === 'systeminformation') {
    unhealthy('seen only on the PCI bus; without nvidia-smi or amd-smi its health cannot be checked')
  }
  const foreign = gpu.processes.filter((p) => !options.leasedPids.has(p.pid))
  for (const p of foreign) problems.push(`in use by process ${p.pid}${p.name != null ? ` (${p.name})` : ''}, which is not a gpumesh lease`)
  return { healthy, busy: foreign.length > 0, problems }
}
