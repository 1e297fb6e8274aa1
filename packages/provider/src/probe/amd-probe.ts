// Runs amd-smi, falling back to rocm-smi. Parsing lives in amd-smi.ts.
import { AMD_SMI_ARGS, AMD_SMI_METRIC_ARGS, ROCM_SMI_ARGS } from './constants.js'
import { ProbeToolError } from './errors.js'
import { parseAmdSmi, parseRocmSmi } from './amd-smi.js'
import { firstLine, quote, type ToolProbe } from './nvidia-probe.js'
import { runTool } from './run-tool.js'
import type { ProbeIssue, ProbeLogger } from './types.js'

export interface AmdProbeOptions {
  amdSmi: { file: string, explicit: boolean }
  rocmSmi: { file: string, explicit: boolean }
  timeoutMs: number
  signal?: AbortSignal | undefined
  env?: Record<string, string | undefined> | undefined
  logger?: ProbeLogger | undefined
}

export async function probeAmd (options: AmdProbeOptions): Promise<ToolProbe> {
  const primary = await probeAmdSmi(options)
  if (primary.found && primary.issues.length === 0) return primary
  const fallback = await probeRocmSmi(options)
  if (!fallback.found) return primary
  if (fallback.issues.length === 0 && primary.found) {
    options.logger?.warn({ issues: primary.issues.map((i) => i.message) }, 'amd-smi failed; using rocm-smi')
    return fallback
  }
  return { found: true, gpus: primary.gpus.length > 0 ? primary.gpus : fallback.gpus, issues: [...primary.issues, ...fallback.issues] }
}

async function probeAmdSmi (options: AmdProbeOptions): Promise<ToolProbe> {
  const run = async (args: readonly string[]): Promise<{ stdout: string, stderr: string, exitCode: number | null }> =>
    await runTool(options.amdSmi.file, args, { timeoutMs: options.timeoutMs, signal: options.signal, env: options.env, label: 'amd-smi' })
  try {
    const out = await run(AMD_SMI_ARGS)
    if (out.exitCode !== 0) return issue('amd-smi', 'TOOL_FAILED', `amd-smi failed (exit ${out.exitCode ?? 'by signal'}${quote(firstLine(out.stderr) ?? firstLine(out.stdout))})`)
    let metric: string | null = null
    try {
      const m = await run(AMD_SMI_METRIC_ARGS)
      if (m.exitCode === 0) metric = m.stdout
    } catch (err) {
      options.logger?.debug({ err: (err as Error).message }, 'amd-smi metric gave no answer')
    }
    const parsed = parseAmdSmi(out.stdout, metric)
    return { found: true, gpus: parsed.gpus, issues: parsed.issues }
  } catch (err) {
    return failed('amd-smi', err, options.amdSmi.explicit, 'probe.amdSmi or GPUMESH_AMD_SMI')
  }
}

async function probeRocmSmi (options: AmdProbeOptions): Promise<ToolProbe> {
  try {
    const out = await runTool(options.rocmSmi.file, ROCM_SMI_ARGS, { timeoutMs: options.timeoutMs, signal: options.signal, env: options.env, label: 'rocm-smi' })
    if (out.exitCode !== 0) return issue('rocm-smi', 'TOOL_FAILED', `rocm-smi failed (exit ${out.exitCode ?? 'by signal'}${quote(firstLine(out.stderr) ?? firstLine(out.stdout))})`)
    const parsed = parseRocmSmi(out.stdout)
    return { found: true, gpus: parsed.gpus, issues: parsed.issues }
  } catch (err) {
    return failed('rocm-smi', err, options.rocmSmi.explicit, 'probe.rocmSmi or GPUMESH_ROCM_SMI')
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
