import { describe, expect, it } from 'vitest'
import type { JobFileError } from '../src/errors.js'
import { jobBudget, parseJobFile } from '../src/job-file.js'

const GOOD = `# a training job
gpus: { count: 2, classes: [H100-SXM-80GB, A100-SXM4-80GB], minMemoryMiB: 40000, minComputeCapability: "8.0" }
region: null
maxPricePerGpuHour: "2.50"
token: { address: "0x0000000000000000000000000000000000000000", decimals: 6, chainId: 31337 }
durationSec: 3600
command: node
args: [train.mjs, --steps, 100]
env: { EPOCHS: 3 }
image: null
maxRunTimeSec: 3000
files: [train.mjs, data/]
allowSimulated: false
`

function fails (source: string): JobFileError {
  try {
    parseJobFile(source, 'job.yaml')
  } catch (err) {
    expect((err as Error).name).toBe('JobFileError')
    return err as JobFileError
  }
  throw new Error('expected a JobFileError')
}

describe('job file', () => {
  it('reads every key into an order and a job spec', () => {
    const job = parseJobFile(GOOD, 'job.yaml')
    expect(job.requirements).toEqual({
      gpuCount: 2, classes: ['H100-SXM-80GB', 'A100-SXM4-80GB'], minMemoryMiB: 40000, minComputeCapability: '8.0',
      region: null, operators: [], escrow: null, allowSimulated: false
    })
    expect(job.maxPricePerGpuHour).toBe(2_500_000n)
    expect(job.token).toEqual({ address: '0x0000000000000000000000000000000000000000', decimals: 6, chainId: 31337n })
    expect(job.spec).toEqual({ command: 'node', args: ['train.mjs', '--steps', '100'], env: { EPOCHS: '3' }, image: null, maxRunTimeSec: 3000 })
    expect(job.files).toEqual(['train.mjs', 'data/'])
    // 2.50 × 2 GPUs × 1 h
    expect(jobBudget(job)).toBe(5_000_000n)
  })

  it('fills defaults and reads an unquoted price as written, not through a float', () => {
    const job = parseJobFile('gpus: { count: 1 }\nmaxPricePerGpuHour: 0.10\ndurationSec: 600\ncommand: nvidia-smi\n')
    expect(job.maxPricePerGpuHour).toBe(100_000n)
    expect(job.spec.maxRunTimeSec).toBe(600)
    expect(job.token.decimals).toBe(6)
    expect(job.files).toEqual([])
  })

  it('names the line and key of a wrong type', () => {
    const err = fails(GOOD.replace('durationSec: 3600', 'durationSec: an hour'))
    expect(err.key).toBe('durationSec')
    expect(err.line).toBe(6)
    expect(err.message).toMatch(/^job\.yaml:6: durationSec: /)
  })

  it('names the line and key of a nested value', () => {
    const err = fails(GOOD.replace('count: 2', 'count: 0'))
    expect(err.key).toBe('gpus.count')
    expect(err.line).toBe(2)
    const cc = fails(GOOD.replace('minComputeCapability: "8.0"', 'minComputeCapability: "eight"'))
    expect(cc.key).toBe('gpus.minComputeCapability')
  })

  it('names an unknown key and its line', () => {
    const err = fails(GOOD.replace('region: null', 'region: null\ngpuz: 3'))
    expect(err.key).toBe('gpuz')
    expect(err.line).toBe(4)
    expect(err.message).toContain('unknown key')
  })

  it('points a missing key at its parent', () => {
    const err = fails(GOOD.replace('command: node\n', ''))
    expect(err.key).toBe('command')
    expect(err.message).toContain('missing')
    expect(err.line).toBe(2)
  })

  it('refuses money it would have to round, with the line', () => {
    const err = fails(GOOD.replace('"2.50"', '"2.5000001"'))
    expect(err.key).toBe('maxPricePerGpuHour')
    expect(err.line).toBe(4)
    expect(err.message).toContain('decimals')
  })

  it('refuses files outside the job directory, naming the entry', () => {
    const err = fails(GOOD.replace('files: [train.mjs, data/]', 'files:\n  - train.mjs\n  - ../secrets'))
    expect(err.key).toBe('files.1')
    expect(err.line).toBe(14)
  })

  it('refuses a run time longer than the lease', () => {
    const err = fails(GOOD.replace('maxRunTimeSec: 3000', 'maxRunTimeSec: 4000'))
    expect(err.key).toBe('maxRunTimeSec')
    expect(err.line).toBe(11)
  })

  it('reports YAML syntax errors with their line, and duplicate keys', () => {
    const err = fails('gpus: { count: 1\ncommand: x\n')
    expect(err.line).not.toBeNull()
    const dup = fails(GOOD + 'durationSec: 60\n')
    expect(dup.message).toMatch(/YAML/)
    expect(dup.line).toBe(14)
  })

  it('takes an unquoted 0x address as written, not as a number', () => {
    const job = parseJobFile(GOOD.replace('"0x0000000000000000000000000000000000000000"', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'))
    expect(job.token.address).toBe('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed')
  })

  it('checks address checksums', () => {
    const err = fails(GOOD.replace('0x0000000000000000000000000000000000000000', '0x52908400098527886e0F7030069857D2E4169EE8'))
    expect(err.key).toBe('token.address')
  })
})
