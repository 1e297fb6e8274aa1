import { EventEmitter } from 'node:events'
import type { GpuHealthState, GpuInput, GpuState, Ledger } from '@gpumesh/ledger'
import type { Logger } from 'pino'
import type { GpuReadingNow } from './history.js'
import { VANISHED_PROBLEM } from './probe/index.js'
import { RepeatingTask } from '@gpumesh/net'
import type { GpuInfo, HostInfo, ProbeIssue, ProbeResult } from './probe/index.js'

/** What the inventory needs of a prober: `GpuProber` in the daemon, a stand-in in tests. */
export interface InventoryProber {
  probe: (options: { signal?: AbortSignal }) => Promise<ProbeResult>
}

export interface InventoryOptions {
  /** `probe.intervalSec` in milliseconds. */
  intervalMs: number
}

export interface InventoryComponents {
  ledger: Ledger
  prober: InventoryProber
  logger: Logger
}

/** One GPU as the daemon sees it: the probe's verdict joined with the ledger's reservations. */
export interface InventoryGpu {
  uuid: string
  index: number | null
  name: string
  class: string
  vendor: GpuInfo['vendor']
  memoryMiB: number | null
  computeCapability: string | null
  /** PCI address from the probe (the docker runner finds an AMD GPU's render node by it), or null. */
  pciBusId: string | null
  simulated: boolean
  /** Probe state, or `reserved` / `leased` while a lease holds the GPU. */
  state: GpuState
  healthy: boolean
  busy: boolean
  problems: string[]
  leaseId: string | null
}

export interface InventoryEvents {
  /** Sellable capacity or health changed (GPU lost, unhealthy, back, lease start or end). */
  change: []
}

/**
 * Which GPU (by UUID) is free, reserved, leased, unhealthy or busy. Probes periodically and records the
 * verdict in the ledger; the ledger's reservations say which GPUs leases hold. A GPU is sellable when
 * healthy, not busy and not held by a lease. Emits `change` when that picture changes: after a probe,
 * and when the ledger's `capacity-changed` says a lease took or gave back GPUs.
 */
export class Inventory extends EventEmitter<InventoryEvents> {
  readonly #components: InventoryComponents
  readonly #task: RepeatingTask
  readonly #log: Logger
  #last: ProbeResult | null = null
  #fingerprint = ''

  constructor (options: InventoryOptions, components: InventoryComponents) {
    super()
    this.#components = components
    this.#log = components.logger
    this.#task = new RepeatingTask({ name: 'probe', intervalMs: options.intervalMs, logger: this.#log }, async (signal) => {
      await this.refresh(signal)
    })
  }

  /**
   * Probes once (so the first offer has GPUs), then every interval; and looks again each time the
   * ledger says a lease took or gave back GPUs (`capacity-changed`, whoever wrote it).
   */
  async start (): Promise<void> {
    if (this.#task.started) return
    await this.refresh()
    this.#components.ledger.on('capacity-changed', this.#onCapacityChanged)
    this.#task.start()
  }

  async stop (): Promise<void> {
    this.#components.ledger.off('capacity-changed', this.#onCapacityChanged)
    await this.#task.stop()
  }

  readonly #onCapacityChanged = (): void => { this.checkForChange() }

  get host (): HostInfo | null {
    return this.#last?.host ?? null
  }

  get probeErrors (): ProbeIssue[] {
    return this.#last?.errors ?? []
  }

  /** Probes now, records the result in the ledger and emits `change` if capacity or health moved. */
  async refresh (signal?: AbortSignal): Promise<void> {
    const result = await this.#components.prober.probe(signal === undefined ? {} : { signal })
    if (signal?.aborted === true) return
    const ledger = this.#components.ledger
    const probed = new Set(result.gpus.map((g) => g.uuid))
    ledger.upsertGpus(result.gpus.flatMap(toGpuInput))
    for (const known of ledger.listGpus()) {
      // A GPU the ledger knows but the probe no longer lists (config or hardware changed) is gone.
      if (!probed.has(known.uuid) && known.state !== 'gone') ledger.markGpuState(known.uuid, 'gone', [VANISHED_PROBLEM])
    }
    for (const gpu of result.gpus) {
      if (!gpu.healthy || gpu.busy) this.#log.warn({ gpu: gpu.uuid, simulated: gpu.simulated, problems: gpu.problems }, 'GPU not offered')
    }
    for (const issue of result.errors) this.#log.warn({ source: issue.source, code: issue.code }, issue.message)
    this.#last = result
    this.checkForChange()
  }

  /** Re-reads the ledger and emits `change` if the sellable picture differs from the last one seen. */
  checkForChange (): void {
    const fingerprint = this.gpus().map((g) => `${g.uuid}:${g.state}:${g.healthy ? 1 : 0}:${g.busy ? 1 : 0}`).join(',')
    if (fingerprint === this.#fingerprint) return
    const first = this.#fingerprint === ''
    this.#fingerprint = fingerprint
    if (!first) this.#log.info({ sellable: this.sellable().length }, 'capacity changed')
    this.emit('change')
  }

  /** Every GPU of the last probe, with its ledger state. */
  gpus (): InventoryGpu[] {
    const probe = this.#last
    if (probe == null) return []
    const records = new Map(this.#components.ledger.listGpus().map((r) => [r.uuid, r]))
    return probe.gpus.map((g) => {
      const record = records.get(g.uuid)
      return {
        uuid: g.uuid,
        index: g.index,
        name: g.name,
        class: g.class,
        vendor: g.vendor,
        memoryMiB: g.memoryTotalMiB ?? g.spec?.memoryMiB ?? null,
        computeCapability: g.computeCapability,
        pciBusId: g.pciBusId,
        simulated: g.simulated,
        state: record?.state ?? healthState(g),
        healthy: g.healthy,
        busy: g.busy,
        problems: g.problems,
        leaseId: record?.leaseId ?? null
      }
    })
  }

  /** The last probe's readings of each GPU (utilisation, memory, temperature, power; null where unknown). */
  readings (): GpuReadingNow[] {
    return (this.#last?.gpus ?? []).map((g) => ({
      uuid: g.uuid,
      index: g.index,
      utilizationPercent: g.utilizationPercent,
      memoryUsedMiB: g.memoryUsedMiB,
      temperatureC: g.temperatureC,
      powerDrawW: g.powerDrawW
    }))
  }

  /** GPUs a new lease may take: healthy, not busy, not held by a lease. */
  sellable (): InventoryGpu[] {
    return this.gpus().filter(isSellable)
  }
}

export function isSellable (gpu: InventoryGpu): boolean {
  return gpu.healthy && !gpu.busy && gpu.state === 'free'
}

function healthState (gpu: GpuInfo): GpuHealthState {
  if (gpu.problems.includes(VANISHED_PROBLEM)) return 'gone'
  if (!gpu.healthy) return 'unhealthy'
  return gpu.busy ? 'busy' : 'free'
}

/** The ledger row of a probed GPU; a real GPU of unknown vendor cannot be sold and is not recorded. */
function toGpuInput (gpu: GpuInfo): GpuInput[] {
  if (gpu.vendor === 'unknown' && !gpu.simulated) return []
  return [{
    uuid: gpu.uuid,
    index: gpu.index ?? -1,
    vendor: gpu.vendor === 'unknown' ? 'simulated' : gpu.vendor,
    name: gpu.name,
    class: gpu.class,
    memoryMiB: gpu.memoryTotalMiB ?? gpu.spec?.memoryMiB ?? 0,
    simulated: gpu.simulated,
    state: healthState(gpu),
    problems: gpu.problems
  }]
}
