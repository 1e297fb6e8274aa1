import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { ProviderStatus } from './provider.js'

/**
 * Prometheus metrics of one provider, read from its status at scrape time, so no part of the daemon
 * carries metric code. Names are `gpumesh_provider_<what>_<unit>`; labels are bounded (GPU state,
 * model class, reason code) — never a peer id or a lease id.
 */
export class ProviderMetrics {
  readonly registry = new Registry()

  constructor (status: () => ProviderStatus) {
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
