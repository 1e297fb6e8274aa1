import { describe, expect, it } from 'vitest'
import {
  configFromEnv, configKeys, envNameForKey, parseConfigYaml, parseProviderConfig, renderConfigTemplate
} from '../src/index.js'
import { ConfigError } from '../src/errors.js'

function issuesOf (fn: () => unknown): Array<{ path: string, value: unknown, expected: string }> {
  try {
    fn()
  } catch (err) {
    expect((err as Error).name).toBe('ConfigError')
    return (err as ConfigError).issues
  }
  throw new Error('expected a ConfigError')
}

describe('provider config', () => {
  it('reads probe.simulate models as people write them, through the class table\'s matching', () => {
    const simulate = (model: string): string => parseProviderConfig({ dataDir: '/tmp/x', probe: { simulate: [{ model, count: 2 }] } }).probe.simulate[0]?.model ?? ''
    expect(simulate('H100')).toBe('H100-SXM-80GB')
    expect(simulate('h100 sxm 80gb')).toBe('H100-SXM-80GB')
    expect(simulate('NVIDIA H100 80GB HBM3')).toBe('H100-SXM-80GB') // as nvidia-smi prints it
    expect(simulate('H100 PCIe')).toBe('H100-PCIE-80GB')
    expect(simulate('A100 80GB')).toBe('A100-PCIE-80GB')
    expect(simulate('NVIDIA A100-SXM4-80GB')).toBe('A100-SXM4-80GB')
    expect(simulate('AMD Instinct MI300X')).toBe('MI300X')
    expect(simulate('MI300')).toBe('MI300X') // the start of one class name
  })

  it('refuses a probe.simulate model it cannot place, listing the classes', () => {
    const ambiguous = issuesOf(() => parseProviderConfig({ dataDir: '/tmp/x', probe: { simulate: [{ model: 'H100-SXM-80GB', count: 1 }, { model: 'RX 7900', count: 1 }] } }))
    expect(ambiguous).toEqual([{ path: 'probe.simulate.1.model', value: 'RX 7900', expected: 'one of the classes it could mean: RX-7900-XTX, RX-7900-XT' }])
    const unknown = issuesOf(() => parseProviderConfig({ dataDir: '/tmp/x', probe: { simulate: [{ model: 'Z9000', count: 1 }] } }))
    expect(unknown).toHaveLength(1)
    expect(unknown[0]).toMatchObject({ path: 'probe.simulate.0.model', value: 'Z9000' })
    expect(unknown[0]?.expected).toMatch(/^a GPU class \(GB200, B200, .*H100-SXM-80GB, .*V100-16GB\) or a model name as nvidia-smi or amd-smi prints it$/)
  })

  it('fills every default from the data directory alone', () => {
    const config = parseProviderConfig({ dataDir: '/tmp/x' })
    expect(config.api.host).toBe('127.0.0.1')
    expect(config.probe.maxTemperatureC).toBe(90)
    expect(config.billing.intervalSec).toBe(60)
    expect(config.offers.ttlSec).toBe(120)
    expect(config.runner.kind).toBe('none')
    expect(Object.isFrozen(config.pricing)).toBe(true)
  })

  it('layers file, environment and flags in that order, arrays replacing', () => {
    const file = parseConfigYaml('network:\n  listen: ["/ip4/0.0.0.0/tcp/1", "/ip4/0.0.0.0/tcp/2"]\napi:\n  port: 1000\nprobe:\n  maxTemperatureC: 80\n')
    const env = configFromEnv({ GPUMESH_API_PORT: '2000', GPUMESH_NETWORK_LISTEN: '/ip4/127.0.0.1/tcp/0', GPUMESH_NVIDIA_SMI: '/opt/smi' })
    const config = parseProviderConfig({ dataDir: '/d' }, file, env, { api: { port: 3000 } })
    expect(config.api.port).toBe(3000)
    expect(config.network.listen).toEqual(['/ip4/127.0.0.1/tcp/0'])
    expect(config.probe.maxTemperatureC).toBe(80)
    expect(config.probe.nvidiaSmi).toBe('/opt/smi')
  })

  it('keeps prices exact: YAML decimals become base units without a float', () => {
    const file = parseConfigYaml('pricing:\n  tokenDecimals: 6\n  defaultPerGpuHour: 0.10\n  perGpuHour:\n    H100-SXM-80GB: 2.49\n    RTX-4090: "0.35"\n')
    const config = parseProviderConfig({ dataDir: '/d' }, file)
    expect(config.pricing.perGpuHour['H100-SXM-80GB']).toBe(2_490_000n)
    expect(config.pricing.perGpuHour['RTX-4090']).toBe(350_000n)
    expect(config.pricing.defaultPerGpuHour).toBe(100_000n)
  })

  it('names the key, the bad value and what is expected', () => {
    const issues = issuesOf(() => parseProviderConfig({ dataDir: '/d', api: { port: 'eighty' }, probe: { maxTemperatureC: 500 } }))
    expect(issues.map((i) => i.path).sort()).toEqual(['api.port', 'probe.maxTemperatureC'])
    expect(issues.find((i) => i.path === 'api.port')?.value).toBe('eighty')
    expect(issues.find((i) => i.path === 'probe.maxTemperatureC')?.expected).toMatch(/at most 150/)
  })

  it('rejects unknown keys, too many decimals and contradictory limits', () => {
    expect(issuesOf(() => parseProviderConfig({ dataDir: '/d', network: { mdsn: true } }))[0]?.path).toBe('network.mdsn')
    expect(issuesOf(() => parseProviderConfig({ dataDir: '/d', pricing: { tokenDecimals: 2, perGpuHour: { X: '1.005' } } }))[0]?.path).toBe('pricing.perGpuHour.X')
    expect(issuesOf(() => parseProviderConfig({ dataDir: '/d', leases: { minDurationSec: 100, maxDurationSec: 50 } }))[0]?.path).toBe('leases.minDurationSec')
    expect(issuesOf(() => parseProviderConfig({ dataDir: '/d', settlement: { mode: 'onchain' } }))[0]?.path).toBe('settlement.mode')
  })

  it('words every issue as one sentence: no "must be must", no value said twice', () => {
    const multiaddr = (() => { try { parseProviderConfig({ dataDir: '/d', network: { listen: ['ip4/1.2.3.4'] } }) } catch (err) { return (err as Error).message } return '' })()
    expect(multiaddr).toContain('network.listen.0 is "ip4/1.2.3.4" but must be text starting with "/"')
    expect(multiaddr).not.toMatch(/must be must/)
    const price = (() => { try { parseProviderConfig({ dataDir: '/d', pricing: { perGpuHour: { X: '1.0000001' } } }) } catch (err) { return (err as Error).message } return '' })()
    expect(price).toContain('pricing.perGpuHour.X is "1.0000001" but must be an amount with at most 6 decimals (pricing.tokenDecimals)')
    expect(price.split('1.0000001')).toHaveLength(2)
  })

  it('reports a bad environment variable by its name', () => {
    const issues = issuesOf(() => configFromEnv({ GPUMESH_API_PORT: 'x' }))
    expect(issues[0]).toMatchObject({ path: 'api.port', value: 'x' })
    expect(() => configFromEnv({ GPUMESH_API_PORT: 'x' })).toThrow(/GPUMESH_API_PORT/)
  })

  it('reports a YAML syntax error with its line', () => {
    expect(() => parseConfigYaml('api:\n  port: [1,\n')).toThrow(ConfigError)
  })

  it('writes a commented template that parses back to the defaults', () => {
    const text = renderConfigTemplate('/data/gpumesh')
    for (const { path } of configKeys()) {
      expect(text).toContain(path.split('.').pop() + ':')
    }
    const config = parseProviderConfig(parseConfigYaml(text))
    expect(config).toEqual(parseProviderConfig({ dataDir: '/data/gpumesh' }))
    expect(text).toMatch(/# .*SIGKILL/)
  })

  it('derives environment variable names from key paths', () => {
    expect(envNameForKey('probe.maxTemperatureC')).toBe('GPUMESH_PROBE_MAX_TEMPERATURE_C')
    expect(envNameForKey('billing.paymentGraceSec')).toBe('GPUMESH_BILLING_PAYMENT_GRACE_SEC')
  })
})
