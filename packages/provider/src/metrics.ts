import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { ActivityCounts } from '@gpumesh/ledger'
import type { GpuReadingNow } from './history.js'
import type { ProviderStatus } from './provider.js'

/** What metrics read besides the status: the newest GPU readings and the ledger's totals (null: closed). */
export interface MetricsSources {
  gpuReadings: () => readonly GpuReadingNow[]
  activity: () => ActivityCounts | null
}

/**
 * Prometheus metrics of one provider, read from its status at scrape time, so no part of the daemon
 * carries metric code. Names are `gpumesh_provider_<what>_<unit>`; labels are bounded (GPU state,
 * model class, GPU index, reason code, token address) — never a peer id or a lease id. Money is in the
 * token's base units as a float sample value: exact only up to 2^53, which is enough for display and
 * alerting; the ledger (and its JSON, as decimal strings) holds the exact amounts.
 */
export class ProviderMetrics {
  readonly registry = new Registry()

  constructor (status: () => ProviderStatus, sources: MetricsSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'gpumesh_provider_' })

    new Gauge({
      name: 'gpumesh_provider_gpus',
      help: 'GPUs by state (free, reserved, leased, unhealthy, busy, gone) and model class.',
      labelNames: ['state', 'class', 'simulated'] as const,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const gpu of status().gpus) {
          this.inc({ state: gpu.state, class: gpu.class, simulated: String(gpu.simulated) })
        }
      }
    })

    new Gauge({
      name: 'gpumesh_provider_leases_active',
      help: 'Leases accepted or running.',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect () {
        this.reset()
        this.set({ state: 'accepted' }, 0)
        this.set({ state: 'running' }, 0)
        for (const lease of status().activeLeases) this.inc({ state: lease.state })
      }
    })

    new Counter({
      name: 'gpumesh_provider_proposals_total',
      help: 'Lease proposals answered, by outcome (accepted or the reason code): from the ledger, so across restarts; unsigned or malformed ones since start.',
      labelNames: ['outcome'] as const,
      registers: [this.registry],
      collect () {
        const stats = status().leaseStats
        this.reset()
        this.inc({ outcome: 'accepted' }, stats.accepted)
        for (const [code, count] of Object.entries(stats.rejected)) this.inc({ outcome: code }, count ?? 0)
      }
    })

    new Gauge({
      name: 'gpumesh_provider_offer_gpus_free',
      help: 'GPUs free in the offer now out, by model class.',
      labelNames: ['class'] as const,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const entry of status().offer.gpus) this.inc({ class: entry.class }, entry.countFree)
      }
    })

    new Gauge({
      name: 'gpumesh_provider_offer_expiry_timestamp_seconds',
      help: 'When the offer now out expires (0: no offer out).',
      registers: [this.registry],
      collect () {
        const offer = status().offer
        this.set(offer.reason == null && offer.expiresAt != null ? offer.expiresAt / 1000 : 0)
      }
    })

    const perGpu = (name: string, help: string, read: (r: GpuReadingNow) => number | null, scale = 1): void => {
      new Gauge({
        name,
        help,
        labelNames: ['gpu'] as const,
        registers: [this.registry],
        collect () {
          this.reset()
          sources.gpuReadings().forEach((r, position) => {
            const value = read(r)
            if (value !== null) this.set({ gpu: String(r.index ?? position) }, value * scale)
          })
        }
      })
    }
    perGpu('gpumesh_provider_gpu_utilization_percent', 'GPU utilisation by GPU index (percent), as last read.', (r) => r.utilizationPercent)
    perGpu('gpumesh_provider_gpu_temperature_celsius', 'GPU temperature by GPU index, as last probed.', (r) => r.temperatureC)
    perGpu('gpumesh_provider_gpu_power_watts', 'GPU power draw by GPU index, as last read.', (r) => r.powerDrawW)
    perGpu('gpumesh_provider_gpu_memory_used_bytes', 'GPU memory in use by GPU index, as last read.', (r) => r.memoryUsedMiB, 1024 * 1024)

    new Gauge({
      name: 'gpumesh_provider_leases',
      help: 'Leases in the ledger by state (accepted, running, and how ended ones ended: completed, failed, expired, ...).',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const [state, n] of Object.entries(sources.activity()?.leasesByState ?? {})) this.set({ state }, n)
      }
    })

    new Counter({
      name: 'gpumesh_provider_gpu_seconds_total',
      help: 'GPU-seconds billed in all usage periods recorded.',
      registers: [this.registry],
      collect () {
        const activity = sources.activity()
        this.reset()
        if (activity !== null) this.inc(Number(activity.gpuMs) / 1000)
      }
    })

    new Counter({
      name: 'gpumesh_provider_vouchers_total',
      help: 'Vouchers received from renters.',
      registers: [this.registry],
      collect () {
        this.reset()
        this.inc(sources.activity()?.vouchers ?? 0)
      }
    })

    new Gauge({
      name: 'gpumesh_provider_settlements',
      help: 'Settlement batches (on-chain redemptions, off-chain exports) by kind and state.',
      labelNames: ['kind', 'state'] as const,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const s of sources.activity()?.settlements ?? []) this.set({ kind: s.kind, state: s.state }, s.count)
      }
    })

    new Gauge({
      name: 'gpumesh_provider_earnings_base_units',
      help: 'Money per token in its base units (a float: display only; exact amounts are in the ledger): accrued, vouchered, exported, redeemed, outstanding, unvouchered.',
      labelNames: ['token', 'kind'] as const,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const e of status().earnings) {
          const token = e.token.toLowerCase()
          for (const kind of ['accrued', 'vouchered', 'exported', 'redeemed', 'outstanding', 'unvouchered'] as const) {
            this.set({ token, kind }, Number(e[kind]))
          }
        }
      }
    })

    new Gauge({
      name: 'gpumesh_provider_recent_errors',
      help: 'Errors kept for the dashboard (the newest few since start).',
      registers: [this.registry],
      collect () {
        this.set(status().recentErrors.length)
      }
    })

    new Gauge({
      name: 'gpumesh_provider_probe_errors',
      help: 'Problems the last GPU probe reported.',
      registers: [this.registry],
      collect () {
        this.set(status().probeErrors.length)
      }
    })
  }

  async render (): Promise<{ contentType: string, body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}
