// Runs amd-smi, falling back to rocm-smi. Parsing lives in amd-smi.ts.
import { AMD_SMI_ARGS, AMD_SMI_METRIC_ARGS, AMD_SMI_PROCESS_ARGS, ROCM_SMI_ARGS, ROCM_SMI_PIDS_ARGS } from './constants.js'
import { ProbeToolError } from './errors.js'
import { isPermissionBanner, normalizeBusId, parseAmdSmi, parseAmdSmiProcesses, parseRocmSmi, parseRocmSmiPids, permissionIssue } from './amd-smi.js'
import { kfdDir, readKfdProcesses, type KfdProcesses } from './kfd.js'
import { firstLine, quote, type ToolProbe } from './nvidia-probe.js'
import { runTool, type ToolOutput } from './run-tool.js'
import type { GpuProcess, ProbeIssue, ProbeLogger, RawGpu } from './types.js'

export interface AmdProbeOptions {
  amdSmi: { file: string, explicit: boolean }
  rocmSmi: { file: string, explicit: boolean }
  timeoutMs: number
  signal?: AbortSignal | undefined
  env?: Record<string, string | undefined> | undefined
  /** Where sysfs and procfs are mounted (the KFD process list); default `/sys` and `/proc`. */
  sysfsRoot?: string | undefined
  procRoot?: string | undefined
  /** The user id the probe runs as; null when unknown. */
  uid: number | null
  logger?: ProbeLogger | undefined
}

/**
 * The AMD GPUs as the tools report them, with the processes the KFD lists (`kfd.ts`) added: a process seen
 * by either makes a GPU busy. amd-smi lists other users' processes only to root (ROCm/rocm-systems#8396:
 * "No running processes detected" to a caller without the rights while the GPUs were in use); the KFD's
 * files are readable by every user. When they cannot be read and the tools list no process, a daemon that
 * is not root is told that other users' processes may be invisible.
 */
export async function probeAmd (options: AmdProbeOptions): Promise<ToolProbe> {
  const [tools, kfd] = await Promise.all([
    probeAmdTools(options),
    readKfdProcesses({ sysRoot: options.sysfsRoot, procRoot: options.procRoot })
  ])
  if (tools.gpus.length === 0) return tools
  const issues = [...tools.issues]
  if (kfd.ok) addKfdProcesses(tools.gpus, kfd.byBusId)
  else if (options.uid !== 0 && tools.gpus.every((g) => g.processes.length === 0 && g.processesUnreadable == null)) {
    issues.push(hiddenProcesses(kfd, options))
  }
  return { ...tools, issues }
}

/**
 * Puts each KFD process on the GPU with its PCI address; one the tool listed already gets its name and memory
 * filled in. Processes on an address no GPU has go on every GPU whose address the tool did not say: they
 * cannot be placed, so no such GPU is assumed free of them.
 */
function addKfdProcesses (gpus: RawGpu[], byBusId: Map<string, GpuProcess[]>): void {
  const add = (g: RawGpu, p: GpuProcess): void => {
    const known = g.processes.find((q) => q.pid === p.pid)
    if (known == null) {
      g.processes.push({ ...p })
      return
    }
    known.name ??= p.name
    known.usedMemoryMiB ??= p.usedMemoryMiB
  }
  const placed = new Set<string>()
  for (const g of gpus) {
    const bus = g.pciBusId != null ? normalizeBusId(g.pciBusId) : null
    if (bus == null) continue
    placed.add(bus)
    for (const p of byBusId.get(bus) ?? []) add(g, p)
  }
  const unplaced = [...byBusId].filter(([bus]) => !placed.has(bus)).flatMap(([, list]) => list)
  for (const g of gpus) {
    if (g.pciBusId != null) continue
    for (const p of unplaced) add(g, { ...p, usedMemoryMiB: null })
  }
}

function hiddenProcesses (kfd: Extract<KfdProcesses, { ok: false }>, options: AmdProbeOptions): ProbeIssue {
  const who = options.uid == null ? 'this user may not be root' : `this user (uid ${options.uid}) is not root`
  return {
    source: 'kfd',
    code: 'PROCESSES_HIDDEN',
    message: `other users' processes on the AMD GPUs may be invisible: ${who}, so amd-smi and rocm-smi list only its own processes, ` +
      `and the driver's process list ${kfd.path} cannot be read (${kfd.reason}); a GPU busy with another user's work may be offered. ` +
      `Make ${kfdDir(options.sysfsRoot)} readable to the daemon (in a container, mount the host's /sys), or set probe.sysfsRoot to where it is mounted`
  }
}

/**
 * amd-smi first. When it lists no GPU, rocm-smi instead. When it lists GPUs but could not read the health
 * or processes of some, rocm-smi is asked too and fills in what it can read for the same GPU (same UUID
 * or PCI address); amd-smi's failures stay reported either way.
 */
async function probeAmdTools (options: AmdProbeOptions): Promise<ToolProbe> {
  const primary = await probeAmdSmi(options)
  if (primary.found && primary.issues.length === 0) return primary
  const incomplete = primary.gpus.some((g) => g.healthUnreadable != null || g.processesUnreadable != null)
  if (primary.gpus.length > 0 && !incomplete) return primary
  const fallback = await probeRocmSmi(options)
  if (!fallback.found) return primary
  if (primary.gpus.length > 0) {
    fillFrom(primary.gpus, fallback.gpus)
    return { found: true, gpus: primary.gpus, issues: [...primary.issues, ...fallback.issues] }
  }
  if (fallback.issues.length === 0 && primary.found) {
    options.logger?.warn({ issues: primary.issues.map((i) => i.message) }, 'amd-smi failed; using rocm-smi')
    // rocm-smi works without the render and video groups where amd-smi does not; the fix is still the operator's.
    return { ...fallback, issues: primary.issues.filter((i) => i.code === 'NO_PERMISSION') }
  }
  return { found: true, gpus: primary.gpus.length > 0 ? primary.gpus : fallback.gpus, issues: [...primary.issues, ...fallback.issues] }
}

/** Health and processes that amd-smi could not read, taken from rocm-smi's view of the same GPU. */
function fillFrom (gpus: RawGpu[], other: RawGpu[]): void {
  for (const g of gpus) {
    const o = other.find((x) => x.uuid === g.uuid || (g.pciBusId != null && x.pciBusId === g.pciBusId))
    if (o == null) continue
    if (g.healthUnreadable != null && o.healthUnreadable == null) {
      g.temperatureC = o.temperatureC
      g.utilizationPercent ??= o.utilizationPercent
      g.powerDrawW ??= o.powerDrawW
      g.memoryUsedMiB ??= o.memoryUsedMiB
      g.healthUnreadable = null
    }
    g.powerLimitW ??= o.powerLimitW
    g.driverVersion ??= o.driverVersion
    if (g.processesUnreadable != null && o.processesUnreadable == null) {
      g.processes = o.processes
      g.processesUnreadable = null
    }
  }
}

async function probeAmdSmi (options: AmdProbeOptions): Promise<ToolProbe> {
  const run = async (args: readonly string[]): Promise<ToolOutput> =>
    await runTool(options.amdSmi.file, args, { timeoutMs: options.timeoutMs, signal: options.signal, env: options.env, label: 'amd-smi' })
  try {
    const out = await run(AMD_SMI_ARGS)
    const said = `${out.stdout}\n${out.stderr}`.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '')
    // ROCm 7.0's amd-smi stops with "RuntimeError: WARNING: User is missing the following required groups …".
    if (out.exitCode !== 0 && isPermissionBanner(said)) return { found: true, gpus: [], issues: [permissionIssue('amd-smi', said)] }
    if (out.exitCode !== 0) return issue('amd-smi', 'TOOL_FAILED', `amd-smi failed (exit ${out.exitCode ?? 'by signal'}${quote(firstLine(out.stderr) ?? firstLine(out.stdout))})`)
    const [metric, processes] = await Promise.allSettled([run(AMD_SMI_METRIC_ARGS), run(AMD_SMI_PROCESS_ARGS)])
    const issues: ProbeIssue[] = []
    // A metric call that fails is reported, and the GPUs' health is unreadable (not offered unless allowed).
    const metricOut = sideCall('amd-smi', 'metric', metric, issues, 'temperature, ECC errors and use of the AMD GPUs cannot be read')
    const parsed = parseAmdSmi(out.stdout, metricOut?.text ?? null, metricOut?.failure)
    const processOut = sideCall('amd-smi', 'process', processes, issues, 'the processes using the AMD GPUs cannot be listed, so they count as busy')
    let byIndex: Map<number, GpuProcess[]> | null = null
    let processFailure = processOut?.failure ?? 'amd-smi process gave no answer'
    if (processOut?.text != null) {
      try {
        byIndex = parseAmdSmiProcesses(processOut.text)
      } catch (err) {
        processFailure = `amd-smi process printed output that cannot be read: ${(err as Error).message}`
        issues.push({ source: 'amd-smi', code: 'BAD_OUTPUT', message: `${processFailure}; the AMD GPUs count as busy` })
      }
    }
    attachProcesses(parsed.gpus, byIndex, processFailure)
    return { found: true, gpus: parsed.gpus, issues: [...parsed.issues, ...issues] }
  } catch (err) {
    return failed('amd-smi', err, options.amdSmi.explicit, 'probe.amdSmi or GPUMESH_AMD_SMI')
  }
}

async function probeRocmSmi (options: AmdProbeOptions): Promise<ToolProbe> {
  const run = async (args: readonly string[]): Promise<ToolOutput> =>
    await runTool(options.rocmSmi.file, args, { timeoutMs: options.timeoutMs, signal: options.signal, env: options.env, label: 'rocm-smi' })
  try {
    const [out, pids] = await Promise.allSettled([run(ROCM_SMI_ARGS), run(ROCM_SMI_PIDS_ARGS)])
    if (out.status === 'rejected') throw out.reason
    if (out.value.exitCode !== 0) return issue('rocm-smi', 'TOOL_FAILED', `rocm-smi failed (exit ${out.value.exitCode ?? 'by signal'}${quote(firstLine(out.value.stderr) ?? firstLine(out.value.stdout))})`)
    const parsed = parseRocmSmi(out.value.stdout)
    const issues: ProbeIssue[] = []
    const pidsOut = sideCall('rocm-smi', '--showpids', pids, issues, 'the processes using the AMD GPUs cannot be listed, so they count as busy')
    const indexes = parsed.gpus.map((g) => g.index).filter((i): i is number => i != null)
    attachProcesses(parsed.gpus, pidsOut?.text != null ? parseRocmSmiPids(pidsOut.text, indexes) : null, pidsOut?.failure ?? 'rocm-smi --showpids gave no answer')
    return { found: true, gpus: parsed.gpus, issues: [...parsed.issues, ...issues] }
  } catch (err) {
    return failed('rocm-smi', err, options.rocmSmi.explicit, 'probe.rocmSmi or GPUMESH_ROCM_SMI')
  }
}

/**
 * The stdout of a second call (metric, process list), or why there is none: a failure is an issue
 * saying what it costs (`consequence`), never dropped silently.
 */
function sideCall (source: string, what: string, r: PromiseSettledResult<ToolOutput>, issues: ProbeIssue[], consequence: string): { text: string | null, failure: string } {
  if (r.status === 'rejected') {
    const e = r.reason as Error
    const failure = `${source} ${what} ${e instanceof ProbeToolError && e.code === 'TOOL_TIMEOUT' ? 'did not answer in time' : 'could not be run'}`
    issues.push({ source, code: e instanceof ProbeToolError ? e.code : 'TOOL_FAILED', message: `${e.message}; ${consequence}` })
    return { text: null, failure }
  }
  if (r.value.exitCode !== 0) {
    const failure = `${source} ${what} failed (exit ${r.value.exitCode ?? 'by signal'}${quote(firstLine(r.value.stderr) ?? firstLine(r.value.stdout))})`
    issues.push({ source, code: 'TOOL_FAILED', message: `${failure}; ${consequence}` })
    return { text: null, failure }
  }
  return { text: r.value.stdout, failure: `${source} ${what} gave no answer` }
}

/** Puts the listed processes on their GPUs; without a list every GPU's processes are unreadable. */
function attachProcesses (gpus: RawGpu[], byIndex: Map<number, GpuProcess[]> | null, failure: string): void {
  for (const g of gpus) {
    if (byIndex == null) {
      g.processesUnreadable ??= failure
      continue
    }
    const listed = g.index != null ? byIndex.get(g.index) : undefined
    if (listed == null) g.processesUnreadable ??= 'the process list does not mention it'
    else g.processes.push(...listed)
  }
}

function failed (source: string, err: unknown, explicit: boolean, namedBy: string): ToolProbe {
  if (err instanceof ProbeToolError) {
    if (err.code === 'TOOL_NOT_FOUND' && !explicit) return { found: false, gpus: [], issues: [] }
    return issue(source, err.code, err.code === 'TOOL_NOT_FOUND' ? `${err.message}; it was named by ${namedBy}` : err.message)
  }
  return issue(source, 'TOOL_FAILED', `${source} could not be run: ${(err as Error).message}`)
}

function issue (source: string, code: ProbeIssue['code'], message: string): ToolProbe {
  return { found: true, gpus: [], issues: [{ source, code, message }] }
}
