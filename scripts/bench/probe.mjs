// probe_cycle_ms: one full NVIDIA probe of 8 GPUs (query, compute apps, remapped rows) through the
// stand-in nvidia-smi printing the 8× H100 capture; median of the samples. Host facts are off so the
// figure is the GPU probe itself; spawning dominates, as it does with the real tool.
import { fileURLToPath } from 'node:url'
import { GpuProber } from '@gpumesh/provider'

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
  times.sort((a, b) => a - b)
  const median = times[Math.floor(times.length / 2)]
  return { probe_cycle_ms: { value: Number(median.toFixed(1)), unit: 'ms', samples: SAMPLES } }
}
