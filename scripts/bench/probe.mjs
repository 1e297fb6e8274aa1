// probe_cycle_ms: one full NVIDIA probe of 8 GPUs (query, compute apps, remapped rows) through the
// stand-in nvidia-smi printing the 8× H100 capture; median of the samples. Host facts are off so the
// figure is the GPU probe itself; spawning dominates, as it does with the real tool.
// sample_tick_ms: one metering tick of 8 leases at once through GpuSampler (one light query, shared);
// the cache window is 0 so every tick runs the tool.
import { fileURLToPath } from 'node:url'
import { GpuProber, GpuSampler } from '@gpumesh/provider'
import { median } from './lib/median.mjs'

const fixtures = fileURLToPath(new URL('../../packages/provider/test/fixtures/', import.meta.url))
const SAMPLES = 30

export async function run () {
  const prober = new GpuProber({
    nvidiaSmi: `${fixtures}bin/nvidia-smi`,
    dataDir: fixtures,
    hostFacts: false,
    systemInformationFallback: false,
    toolEnv: { ...process.env, FAKE_SMI_CAPTURE: 'h100x8.csv' }
  })
  const first = await prober.probe()
  if (first.gpus.length !== 8 || first.errors.length > 0) {
    throw new Error(`probe bench: expected 8 healthy GPUs, got ${first.gpus.length} and ${JSON.stringify(first.errors)}`)
  }
  const times = []
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now()
    await prober.probe()
    times.push(performance.now() - t)
  }
  const sampler = new GpuSampler({ nvidiaSmi: `${fixtures}bin/nvidia-smi`, cacheMs: 0, toolEnv: { ...process.env, FAKE_SMI_CAPTURE: 'h100x8.csv' } })
  const uuids = first.gpus.map((g) => g.uuid)
  const check = await sampler.sample(uuids)
  if (check.some((r) => r.powerDrawW == null)) throw new Error(`probe bench: the sampler gave null readings: ${JSON.stringify(check)}`)
  const ticks = []
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now()
    await Promise.all(uuids.map(async (uuid) => await sampler.sample([uuid])))
    ticks.push(performance.now() - t)
  }
  return {
    probe_cycle_ms: { value: Number(median(times).toFixed(1)), unit: 'ms', samples: SAMPLES },
    sample_tick_ms: { value: Number(median(ticks).toFixed(1)), unit: 'ms', samples: SAMPLES }
  }
}

