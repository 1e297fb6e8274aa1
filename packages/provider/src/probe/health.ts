import type { GpuInfo, RawGpu } from './types.js'

export interface HealthOptions {
  maxTemperatureC: number
  /** PIDs belonging to gpumesh leases. */
  leasedPids: ReadonlySet<number>
  /** Offer GPUs whose health cannot be read (`probe.allowUnknownHealth`). Default false. */
  allowUnknownHealth?: boolean | undefined
}

export type HealthVerdict = Pick<GpuInfo, 'healthy' | 'busy' | 'problems'>

/**
 * Judges one GPU. Unhealthy: uncorrected ECC errors, retired pages pending, a row-remap failure, a
 * temperature at or above the limit, or health that cannot be read (unless `allowUnknownHealth`). Busy: a
 * process that is not a gpumesh lease uses it, or the processes using it cannot be listed.
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
  if (gpu.healthUnreadable != null && options.allowUnknownHealth !== true) {
    unhealthy(`its health cannot be read (${gpu.healthUnreadable}), so it is not offered; set probe.allowUnknownHealth to offer it anyway`)
  }
  if (gpu.source === 'systeminformation') {
    unhealthy('seen only on the PCI bus; without nvidia-smi or amd-smi its health cannot be checked')
  }
  const foreign = gpu.processes.filter((p) => !options.leasedPids.has(p.pid))
  for (const p of foreign) problems.push(`in use by process ${p.pid}${p.name != null ? ` (${p.name})` : ''}, which is not a gpumesh lease`)
  if (gpu.processesUnreadable != null) problems.push(`the processes using it cannot be listed (${gpu.processesUnreadable}), so it counts as busy`)
  return { healthy, busy: foreign.length > 0 || gpu.processesUnreadable != null, problems }
}
