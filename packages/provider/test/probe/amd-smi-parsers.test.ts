import { describe, expect, it } from 'vitest'
import { parseAmdSmi, parseRocmSmi } from '../../src/probe/index.js'
import { readFixture } from './helpers.js'

describe('parseAmdSmi', () => {
  it('reads the list shape with metrics', () => {
    const { gpus, issues } = parseAmdSmi(readFixture('amd/amd-smi-static-list.json'), readFixture('amd/amd-smi-metric-list.json'))
    expect(issues).toEqual([])
    expect(gpus).toHaveLength(2)
    expect(gpus[0]).toMatchObject({
      uuid: 'AMD-d1cc5b1b3f2b6a51', index: 0, vendor: 'amd', name: 'AMD Instinct MI300X', source: 'amd-smi',
      pciBusId: '0000:0c:00.0', memoryTotalMiB: 196592, memoryUsedMiB: 283, utilizationPercent: 12,
      temperatureC: 47, powerDrawW: 182, powerLimitW: 750, computeCapability: 'gfx942',
      eccErrors: { corrected: 0, uncorrected: 0 }
    })
    expect(gpus[1]).toMatchObject({ temperatureC: 93, utilizationPercent: 0, eccErrors: { corrected: 4, uncorrected: 1 } })
  })

  it('reads the gpu_data shape with upper-case keys and a plain MB size', () => {
    const { gpus } = parseAmdSmi(readFixture('amd/amd-smi-static-gpu-data.json'))
    expect(gpus).toHaveLength(1)
    expect(gpus[0]).toMatchObject({ name: 'AMD Instinct MI300X', memoryTotalMiB: 196592, pciBusId: '0000:0c:00.0', temperatureC: null })
  })

  it('says so when the output is not JSON', () => {
    const { gpus, issues } = parseAmdSmi('ERROR: something\n')
    expect(gpus).toEqual([])
    expect(issues[0]).toMatchObject({ source: 'amd-smi', code: 'BAD_OUTPUT' })
  })
})

describe('parseRocmSmi', () => {
  it('reads card keys in both spellings', () => {
    const { gpus } = parseRocmSmi(readFixture('amd/rocm-smi.json'))
    expect(gpus).toHaveLength(2)
    expect(gpus[0]).toMatchObject({
      uuid: 'AMD-d1cc5b1b3f2b6a51', index: 0, name: 'AMD Instinct MI300X OAM', memoryTotalMiB: 196592,
      memoryUsedMiB: 283, temperatureC: 44, utilizationPercent: 0, powerDrawW: 139, computeCapability: 'gfx942'
    })
    expect(gpus[1]).toMatchObject({ uuid: 'AMD-pci-0000:83:00.0', name: 'AMD Instinct MI100', temperatureC: 38, utilizationPercent: 7, powerDrawW: 35 })
  })
})
