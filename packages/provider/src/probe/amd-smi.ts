// Pure parsers for amd-smi and rocm-smi JSON. Keys are compared case-insensitively and the shapes of
// several ROCm releases are accepted; anything unrecognised becomes null rather than an exception.
import { cellInteger, cellNumber, cellText, jsonCell } from './values.js'
import type { GpuReading, ProbeIssue, RawGpu } from './types.js'

type Json = Record<string, unknown>

export interface AmdParse {
  gpus: RawGpu[]
  issues: ProbeIssue[]
}

function isObject (v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The value under the first key matching one of `names`, ignoring case, spaces and underscores. */
export function getKey (obj: unknown, ...names: string[]): unknown {
  if (!isObject(obj)) return undefined
  const norm = (s: string): string => s.toLowerCase().replace(/[\s_]+/g, '')
  const wanted = names.map(norm)
  for (const w of wanted) {
    for (const [k, v] of Object.entries(obj)) {
      if (norm(k) === w) return v
    }
  }
  return undefined
}

/** A size in MiB from `{ value, unit }`, a number in `defaultUnit`, or a string like `196592 MB`. */
function sizeMiB (value: unknown, defaultUnit: string): number | null {
  let unit = defaultUnit
  let raw: unknown = value
  if (isObject(value)) {
    raw = getKey(value, 'value')
    const u = getKey(value, 'unit')
    if (typeof u === 'string') unit = u
  }
  let text = jsonCell(raw)
  if (text == null) return null
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]+)?\s*$/.exec(text)
  if (m == null) return null
  text = m[1] ?? ''
  if (m[2] != null) unit = m[2]
  const n = cellNumber(text)
  if (n == null) return null
  switch (unit.toLowerCase()) {
    case 'b': case 'bytes': return Math.round(n / 1048576)
    case 'kb': case 'kib': return Math.round(n / 1024)
    case 'gb': case 'gib': return Math.round(n * 1024)
    default: return n // amd-smi's "MB" is MiB: an MI300X reports 196592 MB.
  }
}

function num (value: unknown): number | null {
  return cellNumber(jsonCell(value))
}

function amdUuid (serial: string | null, bdf: string | null, index: number | null): string {
  if (serial != null) return `AMD-${serial.toLowerCase().replace(/^0x/, '')}`
  if (bdf != null) return `AMD-pci-${bdf.toLowerCase()}`
  return `AMD-index-${index ?? 'unknown'}`
}

function emptyAmd (uuid: string, index: number | null, name: string, source: 'amd-smi' | 'rocm-smi'): RawGpu {
  return {
    uuid, index, vendor: 'amd', name, source, pciBusId: null,
    memoryTotalMiB: null, memoryUsedMiB: null, utilizationPercent: null, temperatureC: null,
    powerDrawW: null, powerLimitW: null, computeCapability: null, driverVersion: null,
    migEnabled: null, migDevices: [], eccErrors: { corrected: null, uncorrected: null },
    retiredPagesPending: null, rowRemapPending: null, rowRemapFailure: null, processes: []
  }
}

/** The per-GPU entries of any amd-smi shape: a list, `{ gpu_data: [...] }`, or `{ "gpu_0": {...} }`. */
function amdEntries (doc: unknown): Array<{ index: number | null, entry: Json }> {
  let list: unknown = doc
  if (isObject(doc)) {
    const inner = getKey(doc, 'gpu_data', 'gpus', 'devices')
    if (Array.isArray(inner)) list = inner
    else {
      return Object.entries(doc)
        .filter(([k, v]) => /^gpu\W*\d+$/i.test(k) && isObject(v))
        .map(([k, v]) => ({ index: cellInteger(/(\d+)$/.exec(k)?.[1]), entry: v as Json }))
    }
  }
  if (!Array.isArray(list)) return []
  return list.filter(isObject).map((entry, i) => ({ index: cellInteger(jsonCell(getKey(entry, 'gpu', 'gpu_id', 'index'))) ?? i, entry }))
}

/**
 * Parses `amd-smi static --asic --vram --bus --json`, optionally merged with
 * `amd-smi metric --usage --temperature --power --mem-usage --ecc --json` (matched by GPU index).
 */
export function parseAmdSmi (staticText: string, metricText?: string | null): AmdParse {
  const issues: ProbeIssue[] = []
  let doc: unknown
  try {
    doc = JSON.parse(staticText)
  } catch (err) {
    return { gpus: [], issues: [{ source: 'amd-smi', code: 'BAD_OUTPUT', message: `amd-smi printed something that is not JSON (${(err as Error).message})` }] }
  }
  const metrics = new Map<number, Json>()
  if (metricText != null && metricText.trim() !== '') {
    try {
      for (const { index, entry } of amdEntries(JSON.parse(metricText))) if (index != null) metrics.set(index, entry)
    } catch {
      issues.push({ source: 'amd-smi', code: 'BAD_OUTPUT', message: 'amd-smi metric printed something that is not JSON; utilisation and temperature are unknown' })
    }
  }
  const entries = amdEntries(doc)
  if (entries.length === 0 && !(Array.isArray(doc) || isObject(doc))) {
    issues.push({ source: 'amd-smi', code: 'BAD_OUTPUT', message: 'amd-smi printed JSON of an unknown shape' })
  }
  const gpus = entries.map(({ index, entry }) => {
    const asic = getKey(entry, 'asic')
    const bus = getKey(entry, 'bus')
    const vram = getKey(entry, 'vram')
    const name = cellText(jsonCell(getKey(asic, 'market_name', 'product_name', 'name'))) ?? 'AMD GPU'
    const serial = cellText(jsonCell(getKey(asic, 'asic_serial', 'serial', 'unique_id')))
    const bdf = cellText(jsonCell(getKey(bus, 'bdf', 'pci_bdf') ?? getKey(entry, 'bdf')))
    const gpu = emptyAmd(amdUuid(serial, bdf, index), index, name, 'amd-smi')
    gpu.pciBusId = bdf
    gpu.memoryTotalMiB = sizeMiB(getKey(vram, 'size', 'vram_size_mb', 'size_mb', 'vram_size'), 'MB')
    gpu.computeCapability = cellText(jsonCell(getKey(asic, 'target_graphics_version', 'gfx_version')))
    const m = index != null ? metrics.get(index) : undefined
    if (m != null) {
      const usage = getKey(m, 'usage')
      const temp = getKey(m, 'temperature')
      const power = getKey(m, 'power')
      const mem = getKey(m, 'mem_usage')
      const ecc = getKey(m, 'ecc')
      gpu.utilizationPercent = num(getKey(usage, 'gfx_activity', 'gfx_usage'))
      gpu.temperatureC = num(getKey(temp, 'edge')) ?? num(getKey(temp, 'hotspot', 'junction'))
      gpu.powerDrawW = num(getKey(power, 'socket_power', 'current_socket_power', 'average_socket_power'))
      gpu.powerLimitW = num(getKey(power, 'power_limit', 'socket_power_limit'))
      gpu.memoryUsedMiB = sizeMiB(getKey(mem, 'used_vram'), 'MB')
      gpu.memoryTotalMiB ??= sizeMiB(getKey(mem, 'total_vram'), 'MB')
      gpu.eccErrors = {
        corrected: cellInteger(jsonCell(getKey(ecc, 'total_correctable_count', 'correctable_count'))),
        uncorrected: cellInteger(jsonCell(getKey(ecc, 'total_uncorrectable_count', 'uncorrectable_count')))
      }
    }
    return gpu
  })
  return { gpus, issues }
}

/** Parses `rocm-smi --showproductname --showmeminfo vram ... --json`: an object keyed `card0`, `card1`, … */
export function parseRocmSmi (text: string): AmdParse {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return { gpus: [], issues: [{ source: 'rocm-smi', code: 'BAD_OUTPUT', message: `rocm-smi printed something that is not JSON (${(err as Error).message})` }] }
  }
  if (!isObject(doc)) {
    return { gpus: [], issues: [{ source: 'rocm-smi', code: 'BAD_OUTPUT', message: 'rocm-smi printed JSON of an unknown shape' }] }
  }
  const gpus: RawGpu[] = []
  for (const [key, card] of Object.entries(doc)) {
    const idx = /^card(\d+)$/i.exec(key)
    if (idx == null || !isObject(card)) continue
    const index = cellInteger(idx[1])
    const text = (...names: string[]): string | null => cellText(jsonCell(getKey(card, ...names)))
    const name = text('Card Series', 'Device Name', 'Card Model') ?? 'AMD GPU'
    const bdf = text('PCI Bus')
    const gpu = emptyAmd(amdUuid(text('Unique ID'), bdf, index), index, name, 'rocm-smi')
    gpu.pciBusId = bdf
    gpu.memoryTotalMiB = sizeMiB(getKey(card, 'VRAM Total Memory (B)'), 'B')
    gpu.memoryUsedMiB = sizeMiB(getKey(card, 'VRAM Total Used Memory (B)'), 'B')
    gpu.computeCapability = text('GFX Version')
    gpu.utilizationPercent = cellNumber(text('GPU use (%)'))
    gpu.temperatureC = cellNumber(text('Temperature (Sensor edge) (C)')) ?? cellNumber(text('Temperature (Sensor junction) (C)'))
    gpu.powerDrawW = cellNumber(text('Current Socket Graphics Package Power (W)', 'Average Graphics Package Power (W)'))
    gpu.powerLimitW = cellNumber(text('Max Graphics Package Power (W)'))
    gpus.push(gpu)
  }
  return { gpus, issues: [] }
}


/**
 * Parses `amd-smi metric --usage --power --mem-usage --json` into readings by GPU index (the metric output
 * has no serial: the caller maps indexes to UUIDs with the probe's result). Throws on text that is not JSON.
 */
export function parseAmdSmiReadings (text: string): Map<number, Omit<GpuReading, 'uuid'>> {
  const out = new Map<number, Omit<GpuReading, 'uuid'>>()
  for (const { index, entry } of amdEntries(JSON.parse(text))) {
    if (index == null) continue
    out.set(index, {
      utilizationPercent: num(getKey(getKey(entry, 'usage'), 'gfx_activity', 'gfx_usage')),
      memoryUsedMiB: sizeMiB(getKey(getKey(entry, 'mem_usage'), 'used_vram'), 'MB'),
      powerDrawW: num(getKey(getKey(entry, 'power'), 'socket_power', 'current_socket_power', 'average_socket_power'))
    })
  }
  return out
}
