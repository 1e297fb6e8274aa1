import { describe, expect, it } from 'vitest'
import { parseComputeApps, parseInvalidFields, parseNvidiaList, parseNvidiaQuery, parseRemappedRows } from '../../src/probe/index.js'
import { captureFields, captureRows, readFixture } from './helpers.js'

describe('parseNvidiaQuery on the shared captures', () => {
  it('reads the 8× H100 capture', () => {
    const { gpus, issues } = parseNvidiaQuery(captureRows('nvidia-smi/h100x8.csv'), captureFields('nvidia-smi/h100x8.csv'))
    expect(issues).toEqual([])
    expect(gpus).toHaveLength(8)
    expect(gpus[0]).toMatchObject({
      uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1',
      index: 0,
      vendor: 'nvidia',
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:18:00.0',
      driverVersion: '565.57.01',
      computeCapability: '9.0',
      memoryTotalMiB: 81559,
      memoryUsedMiB: 1,
      utilizationPercent: 0,
      temperatureC: 30,
      powerDrawW: 100.89,
      powerLimitW: 700,
      migEnabled: false,
      eccErrors: { corrected: 0, uncorrected: 0 }
    })
    expect(gpus[7]?.uuid).toBe('GPU-33135771-a848-ece1-b61e-489e221d663c')
  })

  it('reads the A100 capture with 353 corrected ECC errors on GPU 1', () => {
    const { gpus } = parseNvidiaQuery(captureRows('nvidia-smi/a100x4.csv'), captureFields('nvidia-smi/a100x4.csv'))
    expect(gpus.map((g) => g.eccErrors.corrected)).toEqual([0, 353, 0, 0])
    expect(gpus.every((g) => g.eccErrors.uncorrected === 0)).toBe(true)
    expect(gpus[3]?.powerDrawW).toBe(62.21)
  })

  it('reads the RTX 4090 capture: [N/A] is null, 0 is 0', () => {
    const { gpus } = parseNvidiaQuery(captureRows('nvidia-smi/rtx4090x1.csv'), captureFields('nvidia-smi/rtx4090x1.csv'))
    expect(gpus[0]).toMatchObject({
      name: 'NVIDIA GeForce RTX 4090',
      computeCapability: '8.9',
      memoryTotalMiB: 24564,
      migEnabled: null,
      eccErrors: { corrected: null, uncorrected: null },
      utilizationPercent: 0
    })
  })

  it('reads bare N/A from old drivers as null', () => {
    const { gpus } = parseNvidiaQuery(captureRows('nvidia-smi/old-driver-v100x2.csv'), captureFields('nvidia-smi/old-driver-v100x2.csv'))
    expect(gpus[1]).toMatchObject({ utilizationPercent: null, temperatureC: null, powerDrawW: null, migEnabled: null, retiredPagesPending: null })
    expect(gpus[0]).toMatchObject({ utilizationPercent: 0, temperatureC: 34, retiredPagesPending: false, computeCapability: null })
  })

  it('skips a short row with an issue and keeps the others', () => {
    const { gpus, issues } = parseNvidiaQuery(captureRows('nvidia-smi/a100x4-short-row.csv'), captureFields('nvidia-smi/a100x4-short-row.csv'))
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 3])
    expect(issues).toHaveLength(1)
    expect(issues[0]).toMatchObject({ source: 'nvidia-smi', code: 'BAD_OUTPUT' })
    expect(issues[0]?.message).toContain('12 of 24')
  })

  it('reports a GPU that fell off the bus', () => {
    const { gpus, issues } = parseNvidiaQuery('Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error\n', ['index', 'uuid', 'name'])
    expect(gpus).toEqual([])
    expect(issues[0]).toMatchObject({ code: 'GPU_LOST' })
    expect(issues[0]?.message).toContain('0000:0B:00.0')
  })

  it('refuses rows without a UUID', () => {
    const { gpus, issues } = parseNvidiaQuery('0, not-a-uuid, NVIDIA H100\n', ['index', 'uuid', 'name'])
    expect(gpus).toEqual([])
    expect(issues[0]?.code).toBe('BAD_OUTPUT')
  })

  it('finds the fields an old driver rejects', () => {
    expect(parseInvalidFields('Field "compute_cap" is not a valid field to query.\n\n')).toEqual(['compute_cap'])
  })
})

describe('the other nvidia-smi outputs', () => {
  it('groups MIG instances from -L under their GPU', () => {
    const list = parseNvidiaList(readFixture('nvidia-smi/a100x2-mig.list'))
    expect(list.get('GPU-31515c3d-1414-7c2c-004a-f86a898946ac')).toEqual([
      { uuid: 'MIG-a6a2e5b0-6c5d-5d8e-9d2a-1f0f3e2b7c41', profile: '3g.40gb', index: 0 },
      { uuid: 'MIG-0d1f7b9e-3a4c-5e6f-8a9b-c0d1e2f3a4b5', profile: '2g.20gb', index: 1 },
      { uuid: 'MIG-9e8d7c6b-5a49-5382-a1b0-c9d8e7f6a5b4', profile: '1g.10gb', index: 2 }
    ])
    expect(list.get('GPU-72d87681-01db-370e-567d-41afcf20fad0')).toEqual([])
  })

  it('reads compute apps, with [Not Found] names as null', () => {
    const apps = parseComputeApps(captureRows('nvidia-smi/h100x5-faults-apps.csv'))
    expect(apps.get('GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1')).toEqual([{ pid: 7001, name: 'python train.py', usedMemoryMiB: 20470 }])
    expect(apps.get('GPU-d1838e76-90e6-4408-711d-aeeaa2e1fd14')).toEqual([{ pid: 4242, name: null, usedMemoryMiB: 30710 }])
  })

  it('reads remapped rows', () => {
    const rows = parseRemappedRows(captureRows('nvidia-smi/a100x4-remap.csv'))
    expect(rows.get('GPU-62989189-9e1e-ac75-4676-114f14998542')).toEqual({ pending: true, failure: true })
    expect(rows.get('GPU-31515c3d-1414-7c2c-004a-f86a898946ac')).toEqual({ pending: false, failure: false })
  })
})
