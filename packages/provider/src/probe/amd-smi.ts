// Pure parsers for amd-smi and rocm-smi JSON. Keys are compared case-insensitively and the shapes of
// several ROCm releases are accepted; anything unrecognised becomes null rather than an exception.
import { cellInteger, cellNumber, cellText, jsonCell } from './values.js'
import type { GpuProcess, GpuReading, ProbeIssue, RawGpu } from './types.js'

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

/**
 * An ASIC serial in one spelling: lower case, no `0x`, no leading zeros (amd-smi pads serials to 16
 * digits, rocm-smi does not). All zeros, or nothing, is no serial.
 */
export function normalizeAmdSerial (serial: string | null): string | null {
  if (serial == null) return null
  const hex = serial.trim().toLowerCase().replace(/^0x/, '').replace(/^0+/, '')
  return hex === '' || !/^[0-9a-f]+$/.test(hex) ? null : hex
}

/** A PCI address as `dddd:bb:dd.f` in lower case (rocm-smi prints upper case, amd-smi lower). */
export function normalizeBusId (bdf: string | null): string | null {
  if (bdf == null) return null
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(bdf.trim())
  if (m == null) return bdf.trim().toLowerCase()
  const [, domain, bus, device, fn] = m
  return `${(domain ?? '0').slice(-4).padStart(4, '0')}:${(bus ?? '').padStart(2, '0')}:${(device ?? '').padStart(2, '0')}.${fn ?? '0'}`.toLowerCase()
}

/**
 * The LLVM target name of an AMD GPU (`gfx90a`). rocm-smi builds its "GFX Version" from the KFD's
 * `gfx_target_version` (major·10000 + minor·100 + stepping) by writing the three numbers in decimal one
 * after the other, so gfx90a (9, 0, 10) comes out as `gfx9010`; the target name writes minor and
 * stepping as one hex digit each. A name that already has a hex letter is kept; a feature suffix
 * (`gfx90a:sramecc+:xnack-`) is dropped.
 */
export function normalizeGfxTarget (gfx: string | null): string | null {
  if (gfx == null) return null
  const name = gfx.trim().toLowerCase().split(':')[0] ?? ''
  const m = /^gfx(\d+)$/.exec(name)
  if (m?.[1] == null) return name === '' ? null : name
  const digits = m[1]
  // Majors 10 and up (RDNA) take two digits; 6 to 9 one. What is left is minor (one digit) and stepping.
  const majorLength = digits.startsWith('1') && digits.length >= 4 ? 2 : 1
  const major = digits.slice(0, majorLength)
  const minor = Number(digits.slice(majorLength, majorLength + 1))
  const stepping = Number(digits.slice(majorLength + 1))
  if (digits.length < majorLength + 2 || minor > 15 || stepping > 15) return name
  return `gfx${major}${minor.toString(16)}${stepping.toString(16)}`
}

/** `1002:740f` from a device id such as `0x740f`, or null. */
function amdDeviceId (deviceId: string | null): string | null {
  const m = deviceId != null ? /^(?:0x)?([0-9a-f]{4})$/i.exec(deviceId.trim()) : null
  return m?.[1] != null ? `1002:${m[1].toLowerCase()}` : null
}

function amdUuid (serial: string | null, bdf: string | null, index: number | null): string {
  const s = normalizeAmdSerial(serial)
  if (s != null) return `AMD-${s}`
  if (bdf != null) return `AMD-pci-${bdf}`
  return `AMD-index-${index ?? 'unknown'}`
}

/** A driver version: amd-smi prints the kernel's banner for the in-tree driver (`Linuxversion6.14.0-24-generic(…`). */
function driverVersion (text: string | null): string | null {
  if (text == null) return null
  const kernel = /^Linux\s*version\s*([0-9][\w.+~-]*)/i.exec(text)
  return kernel?.[1] ?? text
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

/** At most this many lines before the JSON are taken for a banner. */
const MAX_BANNER_LINES = 64

/** JSON found in a tool's stdout, and the lines printed before it. */
export interface JsonAfterBanner {
  doc: unknown
  /** Non-empty lines before the JSON (amd-smi's permission warnings and the like). */
  banner: string[]
}

/**
 * The JSON in `text`, read past any lines printed before it: as a user outside the render and video
 * groups, amd-smi prints a warning on stdout before its JSON and still exits 0. Throws the parse error
 * of the whole text when no line starts a parsable JSON document.
 */
export function parseJsonAfterBanner (text: string): JsonAfterBanner {
  try {
    return { doc: JSON.parse(text), banner: [] }
  } catch (err) {
    const lines = text.split(/\r?\n/)
    // Banners are a few lines; looking further would parse megabytes of garbage again and again.
    for (let i = 1; i < Math.min(lines.length, MAX_BANNER_LINES + 1); i++) {
      const start = lines[i]?.trimStart() ?? ''
      if (!start.startsWith('[') && !start.startsWith('{')) continue
      try {
        const doc: unknown = JSON.parse(lines.slice(i).join('\n'))
        return { doc, banner: lines.slice(0, i).map((l) => l.trim()).filter((l) => l !== '') }
      } catch {
        // Not JSON from this line on: try the next one that opens a document.
      }
    }
    throw err
  }
}

const PERMISSION_BANNER = /missing the following required groups|permission needed|permission denied|insufficient permissions?/i

/** True when lines amd-smi printed say the user may not open the GPU device nodes. */
export function isPermissionBanner (banner: readonly string[]): boolean {
  return banner.some((l) => PERMISSION_BANNER.test(l))
}

/** The plain-words issue for an amd-smi that lacks permissions. */
export function permissionIssue (source: string, banner: readonly string[]): ProbeIssue {
  const said = banner.find((l) => PERMISSION_BANNER.test(l)) ?? banner[0] ?? ''
  return {
    source,
    code: 'NO_PERMISSION',
    message: `${source} cannot open the GPU device nodes as this user (it says "${said.length > 160 ? `${said.slice(0, 157)}...` : said}"): ` +
      'add the user that runs gpumesh to the render and video groups (sudo usermod -aG render,video <user>) and restart the daemon; until then the health and processes of its AMD GPUs cannot be trusted'
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

/** The watts of the first of `names` found in `obj`, looking one level into objects such as `ppt0`. */
function watts (obj: unknown, ...names: string[]): number | null {
  for (const name of names) {
    const direct = num(getKey(obj, name))
    if (direct != null) return direct
  }
  if (isObject(obj)) {
    for (const inner of Object.values(obj)) {
      if (!isObject(inner) || 'value' in inner) continue
      for (const name of names) {
        const nested = num(getKey(inner, name))
        if (nested != null) return nested
      }
    }
  }
  return null
}

/** A power cap in watts, or null: a cap of 0 W (what amd-smi prints for an APU, which has none) is no cap. */
function powerCap (w: number | null): number | null {
  return w != null && w > 0 ? w : null
}

/** Why a GPU's health could not be read from a metric entry, or null when it could. */
function unreadableMetric (gpu: RawGpu): string | null {
  return gpu.temperatureC == null && gpu.eccErrors.uncorrected == null
    ? 'amd-smi metric reported neither its temperature nor its ECC errors'
    : null
}

/**
 * Parses `amd-smi static --asic --vram --bus --limit --driver --json`, merged with
 * `amd-smi metric --usage --temperature --power --mem-usage --ecc --json` (matched by GPU index). Both may
 * carry a banner before their JSON (see `parseJsonAfterBanner`); a permission banner gives a
 * NO_PERMISSION issue. A GPU whose metric entry is missing (`metricText` null: the call failed, for the
 * reason `metricFailure`), or says neither temperature nor ECC, gets `healthUnreadable`.
 */
export function parseAmdSmi (staticText: string, metricText?: string | null, metricFailure?: string): AmdParse {
  const issues: ProbeIssue[] = []
  let parsed: JsonAfterBanner
  try {
    parsed = parseJsonAfterBanner(staticText)
  } catch (err) {
    const banner = staticText.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '')
    if (isPermissionBanner(banner)) return { gpus: [], issues: [permissionIssue('amd-smi', banner)] }
    return { gpus: [], issues: [{ source: 'amd-smi', code: 'BAD_OUTPUT', message: `amd-smi printed something that is not JSON (${(err as Error).message})` }] }
  }
  const doc = parsed.doc
  let denied = isPermissionBanner(parsed.banner)
  const metrics = new Map<number, Json>()
  let metricReason: string | null = metricText == null ? (metricFailure ?? 'amd-smi metric gave no answer') : null
  if (metricText != null) {
    try {
      const m = parseJsonAfterBanner(metricText)
      denied ||= isPermissionBanner(m.banner)
      for (const { index, entry } of amdEntries(m.doc)) if (index != null) metrics.set(index, entry)
    } catch {
      metricReason = 'amd-smi metric printed something that is not JSON'
      issues.push({ source: 'amd-smi', code: 'BAD_OUTPUT', message: 'amd-smi metric printed something that is not JSON; temperature, ECC errors and use of the AMD GPUs are unknown' })
    }
  }
  if (denied) issues.push(permissionIssue('amd-smi', parsed.banner))
  const entries = amdEntries(doc)
  if (entries.length === 0 && !(Array.isArray(doc) || isObject(doc))) {
    issues.push({ source: 'amd-smi', code: 'BAD_OUTPUT', message: 'amd-smi printed JSON of an unknown shape' })
  }
  const gpus = entries.map(({ index, entry }) => {
    const asic = getKey(entry, 'asic')
    const bus = getKey(entry, 'bus')
    const vram = getKey(entry, 'vram')
    const limit = getKey(entry, 'limit')
    const text = (obj: unknown, ...names: string[]): string | null => cellText(jsonCell(getKey(obj, ...names)))
    const name = text(asic, 'market_name', 'product_name', 'name') ?? 'AMD GPU'
    const bdf = normalizeBusId(text(bus, 'bdf', 'pci_bdf') ?? text(entry, 'bdf'))
    const gpu = emptyAmd(amdUuid(text(asic, 'asic_serial', 'serial', 'unique_id'), bdf, index), index, name, 'amd-smi')
    gpu.pciBusId = bdf
    gpu.pciDeviceId = amdDeviceId(text(asic, 'device_id'))
    gpu.memoryTotalMiB = sizeMiB(getKey(vram, 'size', 'vram_size_mb', 'size_mb', 'vram_size'), 'MB')
    gpu.computeCapability = normalizeGfxTarget(text(asic, 'target_graphics_version', 'gfx_version'))
    gpu.driverVersion = driverVersion(text(getKey(entry, 'driver'), 'version', 'driver_version'))
    // The power cap: `limit.socket_power` (ROCm 6), `limit.ppt0.socket_power_limit` and kin (later releases).
    gpu.powerLimitW = powerCap(watts(limit, 'socket_power_limit', 'power_limit', 'socket_power', 'max_power_limit', 'max_power'))
    const m = index != null ? metrics.get(index) : undefined
    if (m != null) {
      const usage = getKey(m, 'usage')
      const temp = getKey(m, 'temperature')
      const power = getKey(m, 'power')
      const mem = getKey(m, 'mem_usage')
      const ecc = getKey(m, 'ecc')
      gpu.utilizationPercent = num(getKey(usage, 'gfx_activity', 'gfx_usage'))
      gpu.temperatureC = num(getKey(temp, 'edge')) ?? num(getKey(temp, 'hotspot', 'junction'))
      // A secondary die (the second GCD of an MI250/MI250X) reports no power: null, not an error.
      gpu.powerDrawW = num(getKey(power, 'socket_power', 'current_socket_power', 'average_socket_power'))
      gpu.powerLimitW = powerCap(watts(power, 'power_limit', 'socket_power_limit')) ?? gpu.powerLimitW
      gpu.memoryUsedMiB = sizeMiB(getKey(mem, 'used_vram'), 'MB')
      gpu.memoryTotalMiB ??= sizeMiB(getKey(mem, 'total_vram'), 'MB')
      gpu.eccErrors = {
        corrected: cellInteger(jsonCell(getKey(ecc, 'total_correctable_count', 'correctable_count'))),
        uncorrected: cellInteger(jsonCell(getKey(ecc, 'total_uncorrectable_count', 'uncorrectable_count')))
      }
      gpu.healthUnreadable = unreadableMetric(gpu)
    } else {
      gpu.healthUnreadable = metricReason ?? 'amd-smi metric did not list it'
    }
    if (denied) gpu.processesUnreadable = 'amd-smi lacks the permissions to see other users\' processes'
    return gpu
  })
  return { gpus, issues }
}

/** Parses `rocm-smi --showproductname --showmeminfo vram … --json`: an object keyed `card0`, `card1`, … */
export function parseRocmSmi (text: string): AmdParse {
  let parsed: JsonAfterBanner
  try {
    parsed = parseJsonAfterBanner(text)
  } catch (err) {
    return { gpus: [], issues: [{ source: 'rocm-smi', code: 'BAD_OUTPUT', message: `rocm-smi printed something that is not JSON (${(err as Error).message})` }] }
  }
  const doc = parsed.doc
  if (!isObject(doc)) {
    return { gpus: [], issues: [{ source: 'rocm-smi', code: 'BAD_OUTPUT', message: 'rocm-smi printed JSON of an unknown shape' }] }
  }
  const issues: ProbeIssue[] = isPermissionBanner(parsed.banner) ? [permissionIssue('rocm-smi', parsed.banner)] : []
  const system = getKey(doc, 'system')
  const driver = cellText(jsonCell(getKey(system, 'Driver version')))
  const gpus: RawGpu[] = []
  for (const [key, card] of Object.entries(doc)) {
    const idx = /^card(\d+)$/i.exec(key)
    if (idx == null || !isObject(card)) continue
    const index = cellInteger(idx[1])
    const text = (...names: string[]): string | null => cellText(jsonCell(getKey(card, ...names)))
    const name = text('Card Series', 'Device Name', 'Card Model') ?? 'AMD GPU'
    const bdf = normalizeBusId(text('PCI Bus'))
    const gpu = emptyAmd(amdUuid(text('Unique ID'), bdf, index), index, name, 'rocm-smi')
    gpu.pciBusId = bdf
    gpu.pciDeviceId = amdDeviceId(text('Card Model', 'Device ID', 'GPU ID'))
    gpu.memoryTotalMiB = sizeMiB(getKey(card, 'VRAM Total Memory (B)'), 'B')
    gpu.memoryUsedMiB = sizeMiB(getKey(card, 'VRAM Total Used Memory (B)'), 'B')
    gpu.computeCapability = normalizeGfxTarget(text('GFX Version'))
    gpu.driverVersion = driver
    gpu.utilizationPercent = cellNumber(text('GPU use (%)'))
    gpu.temperatureC = cellNumber(text('Temperature (Sensor edge) (C)')) ?? cellNumber(text('Temperature (Sensor junction) (C)'))
    // "N/A (Secondary die)" on the second GCD of an MI250/MI250X: no number, so null.
    gpu.powerDrawW = cellNumber(text('Current Socket Graphics Package Power (W)', 'Average Graphics Package Power (W)'))
    gpu.powerLimitW = powerCap(cellNumber(text('Max Graphics Package Power (W)')))
    gpu.healthUnreadable = gpu.temperatureC == null ? 'rocm-smi reported no temperature for it' : null
    gpus.push(gpu)
  }
  return { gpus, issues }
}

/** A process on one GPU, with the memory it holds there (null when the tool does not say). */
interface ListedProcess extends GpuProcess {
  index: number
}

/**
 * Parses `amd-smi process --json`: per GPU index, the processes using it. Each GPU's `process_list` holds
 * `{ process_info: { name, pid, memory_usage: { vram_mem } , mem_usage } }` entries, or the sentence
 * "No running processes detected". Some amd-smi releases list a compute process under every GPU: a process
 * listed under several GPUs that holds memory on some is kept only on those; one that holds memory nowhere
 * stays on all of them; one listed with the same memory under each GPU stays on all of them with its memory
 * per GPU unknown (null). Throws on text that is not JSON or not of this shape.
 */
export function parseAmdSmiProcesses (text: string): Map<number, GpuProcess[]> {
  const { doc } = parseJsonAfterBanner(text)
  const entries = amdEntries(doc)
  if (entries.length === 0 && !Array.isArray(doc)) throw new Error('amd-smi process printed JSON of an unknown shape')
  const listed: ListedProcess[] = []
  const out = new Map<number, GpuProcess[]>()
  for (const { index, entry } of entries) {
    if (index == null) continue
    out.set(index, [])
    const list = getKey(entry, 'process_list')
    if (!Array.isArray(list)) throw new Error(`amd-smi process gave no process list for GPU ${index}`)
    for (const item of list) {
      const info: unknown = isObject(item) ? (getKey(item, 'process_info') ?? item) : item
      if (typeof info === 'string') {
        if (/no running processes/i.test(info)) continue
        throw new Error(`amd-smi process said "${info.slice(0, 80)}" for GPU ${index}`)
      }
      const pid = cellInteger(jsonCell(getKey(info, 'pid')))
      if (pid == null) continue
      const vram = sizeMiB(getKey(getKey(info, 'memory_usage'), 'vram_mem'), 'B') ?? sizeMiB(getKey(info, 'mem_usage', 'mem'), 'B')
      listed.push({ index, pid, name: cellText(jsonCell(getKey(info, 'name'))), usedMemoryMiB: vram })
    }
  }
  for (const p of listed) {
    const same = listed.filter((q) => q.pid === p.pid)
    const holdsMemorySomewhere = same.some((q) => (q.usedMemoryMiB ?? 0) > 0)
    if (same.length > 1 && holdsMemorySomewhere && (p.usedMemoryMiB ?? 0) === 0) continue
    // One figure under every GPU is the process's memory on all of them together (amd-smi 26.2 lists each
    // vLLM worker's 28 GB under all four GPUs of a host): it says nothing of any one GPU.
    const oneFigureForAll = same.length > 1 && same.every((q) => q.usedMemoryMiB === p.usedMemoryMiB)
    out.get(p.index)?.push({ pid: p.pid, name: p.name, usedMemoryMiB: oneFigureForAll ? null : p.usedMemoryMiB })
  }
  return out
}

/**
 * Parses the text of `rocm-smi --showpids --showpidgpus` (that option prints no JSON): the "KFD process
 * information" table (PID, name, number of GPUs, VRAM bytes, …) and the "PID n is using k DRM device(s):"
 * lines followed by the device indexes. Returns processes per device index. A process whose devices are
 * not listed is put on every device in `allIndexes` (it cannot be placed, so no GPU is assumed free of
 * it), unless the table says it uses none (a process that only opened /dev/kfd).
 */
export function parseRocmSmiPids (text: string, allIndexes: readonly number[]): Map<number, GpuProcess[]> {
  const lines = text.split(/\r?\n/)
  const table = new Map<number, { name: string | null, vramMiB: number | null, gpuCount: number | null }>()
  const devices = new Map<number, number[]>()
  let inTable = false
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim()
    if (/^PID\s+PROCESS NAME/i.test(line)) { inTable = true; continue }
    if (line.startsWith('=')) inTable = false
    const using = /^PID (\d+) is using (\d+) DRM device\(s\)/i.exec(line)
    if (using?.[1] != null) {
      const count = Number(using[2])
      const list = count > 0 ? (lines[i + 1] ?? '').trim().split(/\s+/).map((d) => cellInteger(d)).filter((d): d is number => d != null) : []
      devices.set(Number(using[1]), list)
      continue
    }
    if (!inTable || line === '') continue
    const cells = line.split(/\s+/)
    const pid = cellInteger(cells[0])
    if (pid == null || cells.length < 6) continue
    const vram = cellNumber(cells[cells.length - 3])
    table.set(pid, { name: cellText(cells.slice(1, cells.length - 4).join(' ')), vramMiB: vram != null ? Math.round(vram / 1048576) : null, gpuCount: cellInteger(cells[cells.length - 4]) })
  }
  const out = new Map<number, GpuProcess[]>(allIndexes.map((i) => [i, []]))
  for (const pid of new Set([...table.keys(), ...devices.keys()])) {
    const info = table.get(pid)
    const on = devices.get(pid) ?? (info?.gpuCount === 0 ? [] : allIndexes)
    for (const index of on) {
      const list = out.get(index) ?? []
      list.push({ pid, name: info?.name ?? null, usedMemoryMiB: on.length === 1 ? (info?.vramMiB ?? null) : null })
      out.set(index, list)
    }
  }
  return out
}

/**
 * Parses `amd-smi metric --usage --power --mem-usage --json` into readings by GPU index (the metric output
 * has no serial: the caller maps indexes to UUIDs with the probe's result). Reads past a banner; throws on
 * text that is not JSON.
 */
export function parseAmdSmiReadings (text: string): Map<number, Omit<GpuReading, 'uuid'>> {
  const out = new Map<number, Omit<GpuReading, 'uuid'>>()
  for (const { index, entry } of amdEntries(parseJsonAfterBanner(text).doc)) {
    if (index == null) continue
    out.set(index, {
      utilizationPercent: num(getKey(getKey(entry, 'usage'), 'gfx_activity', 'gfx_usage')),
      memoryUsedMiB: sizeMiB(getKey(getKey(entry, 'mem_usage'), 'used_vram'), 'MB'),
      powerDrawW: num(getKey(getKey(entry, 'power'), 'socket_power', 'current_socket_power', 'average_socket_power'))
    })
  }
  return out
}
