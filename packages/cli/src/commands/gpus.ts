import { join, isAbsolute, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  configFromEnv, GpuProber, hasToolFailure, missingTools, parseProviderConfig, probeToolSetting, readConfigFile, resolveProbeExecutables,
  type GpuInfo, type ProbeResult
} from '@gpumesh/provider'
import { resolveDataDir } from '../data-dir.js'
import { EXIT } from '../errors.js'
import { CONFIG_FILE } from '../identity.js'
import { renderTable } from '../table.js'
import type { Command } from '../context.js'

export const gpusCommand: Command = {
  name: 'gpus',
  summary: 'Probe this machine\'s GPUs: model, memory, use, temperature, power and health (exit 3 when a GPU tool fails, 2 when a configured one is missing).',
  usage: 'gpus [--json] [--config FILE] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean', default: false },
        config: { type: 'string' },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const configPath = values.config != null ? (isAbsolute(values.config) ? values.config : resolve(ctx.cwd, values.config)) : join(dataDir, CONFIG_FILE)
    const fileLayer = await readConfigFile(configPath, { optional: values.config == null })
    const config = parseProviderConfig({ dataDir }, fileLayer, configFromEnv(ctx.env), { dataDir })
    const executables = resolveProbeExecutables(config.probe, ctx.env)

    const prober = new GpuProber({
      ...executables,
      timeoutMs: config.probe.timeoutMs,
      maxTemperatureC: config.probe.maxTemperatureC,
      allowUnknownHealth: config.probe.allowUnknownHealth,
      simulate: config.probe.simulate.map((s) => ({ model: s.model, count: s.count })),
      dataDir: config.dataDir
    })
    const result = await prober.probe({ signal: ctx.signal })
    const missing = missingTools(result)
    if (values.json) {
      ctx.stdout(JSON.stringify(toJson(result), null, 2) + '\n')
    } else {
      ctx.stdout(renderGpus(result))
      for (const e of result.errors) if (!missing.includes(e)) ctx.stderr(`gpumesh: ${e.source}: ${e.message}\n`)
    }
    // A tool a setting names that is not there is a configuration error (exit 2), said after what the
    // other tools found.
    for (const e of missing) {
      const named = probeToolSetting(e.source, config.probe, ctx.env)
      const setting = named?.setting ?? `probe settings`
      // The probe's message starts with what happened to the path ("/x was not found"); the rest names both settings.
      const what = e.message.split(';')[0] ?? e.message
      ctx.stderr(`gpumesh: ${e.source} as named by ${setting}: ${what}. Correct ${setting}, or unset it so ${e.source} is looked up on PATH.\n`)
    }
    if (missing.length > 0) return EXIT.USAGE
    return hasToolFailure(result) ? EXIT.GPU_TOOL_FAILED : EXIT.OK
  }
}

function toJson (result: ProbeResult): object {
  return {
    host: result.host,
    gpus: result.gpus.map((g) => ({
      uuid: g.uuid,
      index: g.index,
      vendor: g.vendor,
      name: g.name,
      class: g.class,
      memoryTotalMiB: g.memoryTotalMiB,
      memoryUsedMiB: g.memoryUsedMiB,
      utilizationPercent: g.utilizationPercent,
      temperatureC: g.temperatureC,
      powerDrawW: g.powerDrawW,
      powerLimitW: g.powerLimitW,
      computeCapability: g.computeCapability,
      driverVersion: g.driverVersion,
      pciBusId: g.pciBusId,
      migEnabled: g.migEnabled,
      migDevices: g.migDevices,
      eccErrors: g.eccErrors,
      retiredPagesPending: g.retiredPagesPending,
      rowRemapFailure: g.rowRemapFailure,
      processes: g.processes,
      healthy: g.healthy,
      busy: g.busy,
      problems: g.problems,
      simulated: g.simulated,
      source: g.source,
      spec: g.spec
    })),
    errors: result.errors.map((e) => ({ source: e.source, code: e.code, message: e.message }))
  }
}

const dash = '-'

function pair (used: number | null, total: number | null, unit: string): string {
  if (used == null && total == null) return dash
  return `${used != null ? Math.round(used) : '?'} / ${total != null ? Math.round(total) : '?'} ${unit}`
}

function health (g: GpuInfo): string {
  if (!g.healthy) return `unhealthy: ${g.problems.join('; ')}`
  if (g.busy) return `busy: ${g.problems.join('; ')}`
  return 'ok'
}

function renderGpus (result: ProbeResult): string {
  const h = result.host
  const lines: string[] = []
  const cpu = h.cpu.model != null ? `${h.cpu.model}${h.cpu.cores != null ? ` (${h.cpu.cores} threads)` : ''}` : 'CPU unknown'
  const mem = h.memoryTotalMiB != null ? `${(h.memoryTotalMiB / 1024).toFixed(0)} GiB memory` : 'memory unknown'
  const disk = h.diskFreeMiB != null ? `${(h.diskFreeMiB / 1024).toFixed(0)} GiB free in ${h.dataDir}` : `free disk in ${h.dataDir} unknown`
  lines.push(`host ${h.hostname}: ${cpu}, ${mem}, ${disk}`, '')
  if (result.gpus.length === 0) {
    lines.push(result.errors.length > 0
      ? 'No GPUs could be listed: see the errors below.'
      : 'No GPUs found: neither nvidia-smi nor amd-smi/rocm-smi reports a GPU on this machine. To try gpumesh without GPUs, set probe.simulate in config.yaml.')
    return lines.join('\n') + '\n'
  }
  const header = ['IDX', 'UUID', 'MODEL', 'MEMORY', 'UTIL', 'TEMP', 'POWER', 'HEALTH']
  const rows = result.gpus.map((g) => [
    g.index != null ? String(g.index) : dash,
    g.uuid,
    (g.class !== 'unknown' ? g.class : g.name) + (g.simulated ? ' (simulated)' : ''),
    pair(g.memoryUsedMiB, g.memoryTotalMiB, 'MiB'),
    g.utilizationPercent != null ? `${g.utilizationPercent}%` : dash,
    g.temperatureC != null ? `${g.temperatureC} °C` : dash,
    pair(g.powerDrawW, g.powerLimitW, 'W'),
    health(g)
  ])
  lines.push(renderTable(header, rows))
  const offerable = result.gpus.filter((g) => g.healthy && !g.busy).length
  const simulated = result.gpus.filter((g) => g.simulated).length
  lines.push('', `${offerable} of ${result.gpus.length} GPU${result.gpus.length === 1 ? '' : 's'} can be offered.`)
  if (simulated > 0) lines.push(`${simulated} GPU${simulated === 1 ? ' is' : 's are'} simulated (probe.simulate): not real hardware.`)
  return lines.join('\n') + '\n'
}
