// Runs nvidia-smi and turns its answers into GPUs and issues. Parsing lives in nvidia-smi.ts.
import { NVIDIA_APPS_FIELDS, NVIDIA_QUERY_FIELDS, NVIDIA_REMAP_FIELDS, NVIDIA_REQUIRED_FIELDS, NVIDIA_RETIRED_FIELDS } from './constants.js'
import { ProbeToolError } from './errors.js'
import { parseComputeApps, parseInvalidFields, parseNvidiaList, parseNvidiaQuery, parseRemappedRows, parseRetiredPages } from './nvidia-smi.js'
import { runTool, type ToolOutput } from './run-tool.js'
import type { ProbeIssue, ProbeLogger, RawGpu } from './types.js'

const SOURCE = 'nvidia-smi'

/** What one vendor tool found. `found` is false when the tool is simply not installed. */
export interface ToolProbe {
  found: boolean
  gpus: RawGpu[]
  issues: ProbeIssue[]
}

export interface NvidiaProbeOptions {
  /** Path or bare name of nvidia-smi. */
  file: string
  /** The path was configured: its absence is an error, not "no NVIDIA GPU". */
  explicit: boolean
  timeoutMs: number
  signal?: AbortSignal | undefined
  env?: Record<string, string | undefined> | undefined
  /** Fields this driver rejected before; kept across probes. */
  rejectedFields: Set<string>
  logger?: ProbeLogger | undefined
}

export async function probeNvidia (options: NvidiaProbeOptions): Promise<ToolProbe> {
  const run = async (args: string[]): Promise<ToolOutput> =>
    await runTool(options.file, args, { timeoutMs: options.timeoutMs, signal: options.signal, env: options.env, label: SOURCE })

  let output: ToolOutput
  let fields: string[]
  for (let attempt = 0; ; attempt++) {
    fields = NVIDIA_QUERY_FIELDS.filter((f) => !options.rejectedFields.has(f))
    try {
      output = await run([`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'])
    } catch (err) {
      return failed(err, options)
    }
    if (output.exitCode === 0 || attempt >= 3) break
    const rejected = parseInvalidFields(output.stdout + output.stderr)
      .filter((f) => fields.includes(f) && !NVIDIA_REQUIRED_FIELDS.includes(f))
    if (rejected.length === 0) break
    for (const f of rejected) options.rejectedFields.add(f)
    options.logger?.debug({ fields: rejected }, 'nvidia-smi rejected query fields; asking without them')
  }

  const said = firstLine(output.stderr) ?? firstLine(output.stdout)
  if (output.exitCode === 9) {
    return toolIssue('DRIVER_NOT_LOADED', `nvidia-smi cannot talk to the NVIDIA driver: the driver is not loaded (exit 9${quote(said)})`)
  }
  if (output.exitCode === 18) {
    return toolIssue('DRIVER_MISMATCH', `the NVIDIA driver and its library are of different versions; reboot or reload the nvidia kernel module (exit 18${quote(said)})`)
  }
  if (output.exitCode === 6 && /No devices were found/i.test(output.stdout + output.stderr)) {
    return { found: true, gpus: [], issues: [] }
  }

  const parsed = parseNvidiaQuery(output.stdout, fields)
  const issues = [...parsed.issues]
  if (output.exitCode !== 0 && !issues.some((i) => i.code === 'GPU_LOST')) {
    issues.push({ source: SOURCE, code: 'TOOL_FAILED', message: `nvidia-smi failed (exit ${output.exitCode ?? 'by signal'}${quote(said)})` })
  } else if (parsed.gpus.length === 0 && issues.length === 0 && output.stdout.trim() !== '') {
    issues.push({ source: SOURCE, code: 'BAD_OUTPUT', message: 'nvidia-smi printed output that lists no GPU' })
  }
  const gpus = parsed.gpus
  if (gpus.length === 0) return { found: true, gpus, issues }

  const byUuid = new Map(gpus.map((g) => [g.uuid, g]))
  const wantMig = gpus.some((g) => g.migEnabled === true)
  // Memory health (row remapping on Ampere and later, retired pages before) matters where ECC reports.
  const wantMemoryHealth = gpus.some((g) => g.eccErrors.uncorrected != null)
  const [apps, list, remap, retired] = await Promise.allSettled([
    run([`--query-compute-apps=${NVIDIA_APPS_FIELDS.join(',')}`, '--format=csv,noheader,nounits']),
    wantMig ? run(['-L']) : Promise.resolve(null),
    wantMemoryHealth ? run([`--query-remapped-rows=${NVIDIA_REMAP_FIELDS.join(',')}`, '--format=csv,noheader,nounits']) : Promise.resolve(null),
    wantMemoryHealth && !options.rejectedFields.has('retired_pages.pending')
      ? run([`--query-gpu=${NVIDIA_RETIRED_FIELDS.join(',')}`, '--format=csv,noheader,nounits'])
      : Promise.resolve(null)
  ])

  const appsOut = settledOutput(apps, 'list the processes using the GPUs', issues)
  if (appsOut != null) {
    for (const [uuid, procs] of parseComputeApps(appsOut)) byUuid.get(uuid)?.processes.push(...procs)
  }
  const listOut = settledOutput(list, 'list MIG instances (nvidia-smi -L)', issues)
  if (listOut != null) {
    for (const [uuid, migs] of parseNvidiaList(listOut)) {
      const g = byUuid.get(uuid)
      if (g != null) g.migDevices = migs
    }
  }
  // Row remapping exists on Ampere and later; elsewhere the query fails or says [N/A], which is fine.
  if (remap.status === 'fulfilled' && remap.value != null && remap.value.exitCode === 0) {
    for (const [uuid, r] of parseRemappedRows(remap.value.stdout)) {
      const g = byUuid.get(uuid)
      if (g != null) {
        g.rowRemapPending = r.pending
        g.rowRemapFailure = r.failure
      }
    }
  } else if (remap.status === 'rejected') {
    sideQueryFailed(remap.reason, '--query-remapped-rows', issues, options)
  }
  // Retired pages exist before Ampere; a driver that rejects the field is not asked again.
  if (retired.status === 'fulfilled' && retired.value != null) {
    if (retired.value.exitCode === 0) {
      for (const [uuid, pending] of parseRetiredPages(retired.value.stdout)) {
        const g = byUuid.get(uuid)
        if (g != null && pending != null) g.retiredPagesPending = pending
      }
    } else if (parseInvalidFields(retired.value.stdout + retired.value.stderr).includes('retired_pages.pending')) {
      options.rejectedFields.add('retired_pages.pending')
    }
  } else if (retired.status === 'rejected') {
    sideQueryFailed(retired.reason, '--query-gpu=retired_pages.pending', issues, options)
  }
  return { found: true, gpus, issues }
}

/** A memory-health query that gave no answer: only a hang is worth an issue (the driver may be stuck). */
function sideQueryFailed (reason: unknown, query: string, issues: ProbeIssue[], options: NvidiaProbeOptions): void {
  const e = reason as Error
  if (e instanceof ProbeToolError && e.code === 'TOOL_TIMEOUT') issues.push({ source: SOURCE, code: e.code, message: e.message })
  options.logger?.debug({ err: e.message }, `nvidia-smi ${query} gave no answer`)
}

function settledOutput (r: PromiseSettledResult<ToolOutput | null>, what: string, issues: ProbeIssue[]): string | null {
  if (r.status === 'rejected') {
    const e = r.reason as Error
    issues.push({ source: SOURCE, code: e instanceof ProbeToolError ? e.code : 'TOOL_FAILED', message: `nvidia-smi could not ${what}: ${e.message}` })
    return null
  }
  if (r.value == null) return null
  if (r.value.exitCode !== 0) {
    const said = firstLine(r.value.stderr) ?? firstLine(r.value.stdout)
    issues.push({ source: SOURCE, code: 'TOOL_FAILED', message: `nvidia-smi could not ${what} (exit ${r.value.exitCode ?? 'by signal'}${quote(said)})` })
    return null
  }
  return r.value.stdout
}

function failed (err: unknown, options: NvidiaProbeOptions): ToolProbe {
  if (err instanceof ProbeToolError) {
    if (err.code === 'TOOL_NOT_FOUND' && !options.explicit) return { found: false, gpus: [], issues: [] }
    const message = err.code === 'TOOL_NOT_FOUND'
      ? `${err.message}; it was named by probe.nvidiaSmi or GPUMESH_NVIDIA_SMI`
      : err.message
    return toolIssue(err.code, message)
  }
  return toolIssue('TOOL_FAILED', `nvidia-smi could not be run: ${(err as Error).message}`)
}

function toolIssue (code: ProbeIssue['code'], message: string): ToolProbe {
  return { found: true, gpus: [], issues: [{ source: SOURCE, code, message }] }
}

export function firstLine (text: string): string | undefined {
  const line = text.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '')
  return line === undefined ? undefined : line.length > 200 ? `${line.slice(0, 197)}...` : line
}

export function quote (said: string | undefined): string {
  return said === undefined ? '' : `: "${said}"`
}
