// Pure parsers for nvidia-smi output. No I/O: they take text and give values and issues.
import { NVIDIA_RETIRED_FIELDS, NVIDIA_SAMPLE_FIELDS } from './constants.js'
import { cellBoolean, cellInteger, cellNumber, cellText } from './values.js'
import type { GpuProcess, GpuReading, MigDevice, ProbeIssue, RawGpu } from './types.js'

export interface NvidiaQueryParse {
  gpus: RawGpu[]
  issues: ProbeIssue[]
}

const GPU_UUID = /^GPU-[0-9A-Za-z-]+$/
const DEVICE_HANDLE = /^Unable to determine the device handle for GPU ?([0-9A-Fa-f:.]+)?:? ?(.*)$/

function splitCsvLine (line: string): string[] {
  return line.split(',').map((cell) => cell.trim())
}

function isBlankOrComment (line: string): boolean {
  const t = line.trim()
  return t === '' || t.startsWith('#')
}

const DECLARED_QUERY = /^#.*--query-gpu=([A-Za-z0-9_.,]+)/

/**
 * The field list a replayed capture declares in a `# nvidia-smi --query-gpu=<fields> …` comment line
 * (captures carry one; real nvidia-smi prints no comments), or null. Output that declares its columns
 * is read by them rather than by the list asked for.
 */
export function declaredQueryFields (text: string): string[] | null {
  for (const line of text.split(/\r?\n/, 20)) {
    const m = DECLARED_QUERY.exec(line.trim())
    if (m?.[1] != null) return m[1].split(',').filter((f) => f !== '')
  }
  return null
}

/**
 * Rows of `--query-gpu` output as maps from field name to cell, read by the declared or the asked
 * fields; lines that are blank, comments or of another width are counted in `skipped`.
 */
function queryRows (text: string, asked: readonly string[]): { rows: Array<Map<string, string>>, skipped: number } {
  const fields = declaredQueryFields(text) ?? asked
  const rows: Array<Map<string, string>> = []
  let skipped = 0
  for (const line of text.split(/\r?\n/)) {
    if (isBlankOrComment(line)) continue
    const cells = splitCsvLine(line)
    if (cells.length !== fields.length) { skipped++; continue }
    rows.push(new Map(fields.map((f, k) => [f, cells[k] ?? ''])))
  }
  return { rows, skipped }
}

/**
 * Parses `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`. `fields` is the list asked
 * for, in order (unless the output declares its own, see `declaredQueryFields`). A row with the wrong
 * number of cells or without a UUID is skipped with a BAD_OUTPUT issue; "Unable to determine the
 * device handle" lines give GPU_LOST issues.
 */
export function parseNvidiaQuery (text: string, asked: readonly string[]): NvidiaQueryParse {
  const fields = declaredQueryFields(text) ?? asked
  const gpus: RawGpu[] = []
  const issues: ProbeIssue[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ''
    if (isBlankOrComment(line)) continue
    const lost = DEVICE_HANDLE.exec(line.trim())
    if (lost != null) {
      issues.push({ source: 'nvidia-smi', code: 'GPU_LOST', message: `nvidia-smi cannot reach the GPU at PCI ${lost[1] ?? 'address unknown'} (${lost[2] !== undefined && lost[2] !== '' ? lost[2] : 'no reason given'}); it may have fallen off the bus` })
      continue
    }
    if (/^No devices were found/i.test(line.trim())) continue
    const cells = splitCsvLine(line)
    if (cells.length !== fields.length) {
      issues.push({ source: 'nvidia-smi', code: 'BAD_OUTPUT', message: `nvidia-smi printed a line with ${cells.length} of ${fields.length} expected values: "${truncate(line)}"` })
      continue
    }
    const row = new Map<string, string>()
    fields.forEach((f, k) => row.set(f, cells[k] ?? ''))
    const uuid = cellText(row.get('uuid'))
    const name = cellText(row.get('name'))
    if (uuid == null || !GPU_UUID.test(uuid) || name == null) {
      issues.push({ source: 'nvidia-smi', code: 'BAD_OUTPUT', message: `nvidia-smi printed a line without a GPU UUID and name: "${truncate(line)}"` })
      continue
    }
    const migMode = cellText(row.get('mig.mode.current'))
    gpus.push({
      uuid,
      index: cellInteger(row.get('index')),
      vendor: 'nvidia',
      name,
      source: 'nvidia-smi',
      pciBusId: cellText(row.get('pci.bus_id')),
      memoryTotalMiB: cellNumber(row.get('memory.total')),
      memoryUsedMiB: cellNumber(row.get('memory.used')),
      utilizationPercent: cellNumber(row.get('utilization.gpu')),
      temperatureC: cellNumber(row.get('temperature.gpu')),
      powerDrawW: cellNumber(row.get('power.draw')),
      powerLimitW: cellNumber(row.get('power.limit')),
      computeCapability: cellText(row.get('compute_cap')),
      driverVersion: cellText(row.get('driver_version')),
      migEnabled: migMode == null ? null : cellBoolean(migMode),
      migDevices: [],
      eccErrors: {
        corrected: cellInteger(row.get('ecc.errors.corrected.volatile.total')),
        uncorrected: cellInteger(row.get('ecc.errors.uncorrected.volatile.total'))
      },
      retiredPagesPending: cellBoolean(row.get('retired_pages.pending')),
      rowRemapPending: null,
      rowRemapFailure: null,
      processes: []
    })
  }
  return { gpus, issues }
}

/**
 * Parses the light per-tick query `nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,power.draw
 * --format=csv,noheader,nounits` (`NVIDIA_SAMPLE_FIELDS`, or the fields the output declares): readings
 * by GPU UUID, missing values null. Lines that are not such a row (messages, "Unable to determine the
 * device handle") are counted in `skipped`.
 */
export function parseNvidiaReadings (text: string): { readings: Map<string, GpuReading>, skipped: number } {
  const readings = new Map<string, GpuReading>()
  const parsed = queryRows(text, NVIDIA_SAMPLE_FIELDS)
  let skipped = parsed.skipped
  for (const row of parsed.rows) {
    const uuid = cellText(row.get('uuid'))
    if (uuid == null || !GPU_UUID.test(uuid)) { skipped++; continue }
    readings.set(uuid, {
      uuid,
      utilizationPercent: cellNumber(row.get('utilization.gpu')),
      memoryUsedMiB: cellNumber(row.get('memory.used')),
      powerDrawW: cellNumber(row.get('power.draw'))
    })
  }
  return { readings, skipped }
}

/** Parses `--query-gpu=uuid,retired_pages.pending` (or the fields the output declares): by GPU UUID. */
export function parseRetiredPages (text: string): Map<string, boolean | null> {
  const out = new Map<string, boolean | null>()
  for (const row of queryRows(text, NVIDIA_RETIRED_FIELDS).rows) {
    const uuid = cellText(row.get('uuid'))
    if (uuid != null && GPU_UUID.test(uuid) && row.has('retired_pages.pending')) out.set(uuid, cellBoolean(row.get('retired_pages.pending')))
  }
  return out
}

/** The fields nvidia-smi rejected as "not a valid field to query" (old drivers). */
export function parseInvalidFields (text: string): string[] {
  const out: string[] = []
  for (const m of text.matchAll(/Field "([^"]+)" is not a valid field to query/g)) {
    if (m[1] != null) out.push(m[1])
  }
  return out
}

/** Parses `nvidia-smi -L`: MIG instances grouped under their GPU's UUID. */
export function parseNvidiaList (text: string): Map<string, MigDevice[]> {
  const out = new Map<string, MigDevice[]>()
  let current: MigDevice[] | null = null
  for (const line of text.split(/\r?\n/)) {
    const gpu = /^GPU\s+\d+:.*\(UUID:\s*(GPU-[^)\s]+)\s*\)/.exec(line.trim())
    if (gpu?.[1] != null) {
      current = []
      out.set(gpu[1], current)
      continue
    }
    const mig = /^MIG\s+(\S+)\s+Device\s+(\d+):\s*\(UUID:\s*(MIG-[^)\s]+)\s*\)/.exec(line.trim())
    if (mig?.[3] != null && current != null) {
      current.push({ uuid: mig[3], profile: mig[1] ?? null, index: cellInteger(mig[2]) })
    }
  }
  return out
}

/** Parses `--query-compute-apps=gpu_uuid,pid,process_name,used_gpu_memory`: processes by GPU UUID. */
export function parseComputeApps (text: string): Map<string, GpuProcess[]> {
  const out = new Map<string, GpuProcess[]>()
  for (const line of text.split(/\r?\n/)) {
    if (isBlankOrComment(line) || /^No running/i.test(line.trim())) continue
    const cells = splitCsvLine(line)
    if (cells.length < 4) continue
    const uuid = cellText(cells[0])
    const pid = cellInteger(cells[1])
    if (uuid == null || pid == null) continue
    // A process name may itself hold commas; the memory is the last cell.
    const name = cellText(cells.slice(2, -1).join(', '))
    const list = out.get(uuid) ?? []
    list.push({ pid, name, usedMemoryMiB: cellNumber(cells[cells.length - 1]) })
    out.set(uuid, list)
  }
  return out
}

/** Parses `--query-remapped-rows=gpu_uuid,remapped_rows.pending,remapped_rows.failure`. */
export function parseRemappedRows (text: string): Map<string, { pending: boolean | null, failure: boolean | null }> {
  const out = new Map<string, { pending: boolean | null, failure: boolean | null }>()
  for (const line of text.split(/\r?\n/)) {
    if (isBlankOrComment(line)) continue
    const cells = splitCsvLine(line)
    const uuid = cellText(cells[0])
    if (cells.length !== 3 || uuid == null) continue
    out.set(uuid, { pending: cellBoolean(cells[1]), failure: cellBoolean(cells[2]) })
  }
  return out
}

function truncate (s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s
}
