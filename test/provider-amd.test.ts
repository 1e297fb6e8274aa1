// The daemon on an AMD host, probing through the stand-in amd-smi (captures: packages/provider/test/fixtures/amd).
import { spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Wallet } from 'ethers'
import { afterEach, describe, expect, it } from 'vitest'
import { generatePeerKey } from '@gpumesh/net'
import { createProvider, GpuProber, type Provider } from '@gpumesh/provider'
import { silentLogger, tempDir, testConfig } from './provider-helpers.js'
import { KFD_R9700_GPU_IDS, kfdSysfs } from '../packages/provider/test/probe/helpers.js'

const fixtures = fileURLToPath(new URL('../packages/provider/test/fixtures/', import.meta.url))
// Four R9700s under a live vLLM workload: amd-smi 26.2.1 (ROCm 7.2) static, `metric --ecc` and process, captured.
const R9700 = {
  FAKE_AMD_SMI_STATIC: 'captured/amd-smi-static-r9700x4-rocm7.2.json',
  FAKE_AMD_SMI_METRIC: 'captured/amd-smi-metric-ecc-r9700x4-rocm7.2.json'
}

/** A sysfs root whose KFD lists no process (constructed: fixtures/amd/MANIFEST.md), so the host's /sys plays no part. */
const NO_KFD_PROCESSES = join(fixtures, 'amd/constructed/kfd-r9700x4')

let stop: (() => Promise<void>) | null = null
afterEach(async () => { await stop?.(); stop = null })

async function daemonOn (env: Record<string, string>, config: Record<string, unknown> = {}, kfd: { sysfsRoot?: string, uid?: number } = {}): Promise<Provider> {
  const temp = await tempDir()
  const cfg = testConfig(temp.dir, { ...config, pricing: { defaultPerGpuHour: '1.00' } })
  // The GpuProber the daemon builds from config.probe, pointed at the stand-in with this test's environment.
  const prober = new GpuProber({
    amdSmi: join(fixtures, 'bin/amd-smi'),
    allowUnknownHealth: cfg.probe.allowUnknownHealth,
    dataDir: temp.dir,
    hostFacts: false,
    systemInformationFallback: false,
    sysfsRoot: kfd.sysfsRoot ?? NO_KFD_PROCESSES,
    ...(kfd.uid !== undefined ? { uid: kfd.uid } : {}),
    toolEnv: { ...process.env, PATH: dirname(process.execPath), ...env }
  })
  const provider = createProvider(cfg, {
    identity: { peerKey: await generatePeerKey(), paymentKey: Wallet.createRandom().privateKey },
    logger: silentLogger,
    prober,
    nodeOptions: { loopback: true }
  })
  await provider.start()
  stop = async () => { await provider.stop(); await temp.remove() }
  return provider
}

describe('provider on AMD GPUs', () => {
  it('does not offer R9700s that run foreign processes, and status says why', async () => {
    const provider = await daemonOn({ ...R9700, FAKE_AMD_SMI_PROCESS: 'captured/amd-smi-process-r9700x4-vllm-rocm7.2.json' })
    const status = provider.status()
    expect(status.gpus.map((g) => [g.class, g.state])).toEqual(Array(4).fill(['R9700', 'busy']))
    expect(status.gpus[0]?.problems).toContain('in use by process 1883505 (/usr/bin/python3.12), which is not a gpumesh lease')
    expect(status.gpus[0]?.problems).toHaveLength(6)
    expect(provider.inventory.sellable()).toEqual([])
    expect(status.offer.reason).not.toBeNull()
  })

  it('offers the same GPUs once nothing else uses them', async () => {
    const provider = await daemonOn(R9700)
    expect(provider.inventory.sellable()).toHaveLength(4)
  })

  it('does not offer the R9700 another user\'s process holds VRAM on, which amd-smi does not list to a daemon that is not root', async () => {
    // The KFD (sysfs) shows a real foreign process (sleep) holding 28 GiB on GPU 2; amd-smi says "No running processes detected".
    const foreign = spawn('sleep', ['600'], { stdio: 'ignore' })
    const sysfsRoot = await kfdSysfs([{ pid: foreign.pid ?? 0, vram: { [KFD_R9700_GPU_IDS[2]]: 28 * 1024 ** 3 } }])
    try {
      const provider = await daemonOn(R9700, {}, { sysfsRoot, uid: 999 })
      const status = provider.status()
      expect(status.gpus.map((g) => g.state)).toEqual(['free', 'free', 'busy', 'free'])
      expect(status.gpus[2]?.problems).toEqual([`in use by process ${foreign.pid ?? 0} (sleep), which is not a gpumesh lease`])
      expect(provider.inventory.sellable()).toHaveLength(3)
    } finally {
      foreign.kill()
      await rm(sysfsRoot, { recursive: true, force: true })
    }
  })

  it('does not offer GPUs whose health cannot be read, says why, and lists the failure', async () => {
    const provider = await daemonOn({ ...R9700, FAKE_AMD_SMI_MODE: 'metric-fail' })
    const status = provider.status()
    expect(status.gpus.map((g) => g.state)).toEqual(['unhealthy', 'unhealthy', 'unhealthy', 'unhealthy'])
    expect(status.gpus[0]?.problems[0]).toMatch(/its health cannot be read \(amd-smi metric failed/)
    expect(status.probeErrors).toEqual([expect.objectContaining({ source: 'amd-smi', code: 'TOOL_FAILED' })])
    expect(provider.inventory.sellable()).toEqual([])
  })
})
