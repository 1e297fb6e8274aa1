import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { GpuProber, type ProbeOptions } from '../../src/probe/index.js'

export const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url))
export const bin = (name: string): string => `${fixtures}bin/${name}`
export const readFixture = (path: string): string => readFileSync(`${fixtures}${path}`, 'utf8')

/** A capture without its '#' comment lines. */
export const captureRows = (path: string): string =>
  readFixture(path).split('\n').filter((l) => !l.startsWith('#')).join('\n')

/** The field list of a capture, from its '# nvidia-smi --query-gpu=' head line. */
export const captureFields = (path: string): string[] =>
  (/--query-gpu=(\S+)/.exec(readFixture(path))?.[1] ?? '').split(',')

/** A prober running the stand-in nvidia-smi with `env`, amd-smi/rocm-smi from PATH, no host facts. */
export function standInProber (env: Record<string, string>, options: Partial<ProbeOptions> = {}): GpuProber {
  return new GpuProber({
    nvidiaSmi: bin('nvidia-smi'),
    dataDir: fixtures,
    hostFacts: false,
    systemInformationFallback: false,
    toolEnv: { ...process.env, ...env },
    ...options
  })
}
