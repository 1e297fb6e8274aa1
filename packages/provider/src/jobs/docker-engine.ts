import { readdir, stat } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { runTool } from '../probe/run-tool.js'
import { JobError } from './errors.js'
import type { GpuVendorKind } from './runner.js'

/**
 * What the docker runner asks of the engine, through the docker CLI (and, for pulls, the engine's API
 * on its unix socket, which reports bytes): is it there, can it give containers the GPUs, is an image
 * present, allowed, and what is its digest. Parsing is pure; the CLI is run without a shell, with a
 * timeout, and its output capped.
 */

/** How the runner reaches the engine. */
export interface DockerCli {
  /** The docker CLI. */
  binary: string
  /** PATH for the CLI. */
  path: string
  /** Timeout of one CLI call (not `docker run`). Default 15 s. */
  timeoutMs?: number
}

export interface DockerCliResult { exitCode: number | null, stdout: string, stderr: string }

/** Runs `docker args…`; a CLI that cannot be run or that hangs is a JobError RUNNER_FAILED with a sentence. */
export async function docker (cli: DockerCli, args: readonly string[]): Promise<DockerCliResult> {
  try {
    return await runTool(cli.binary, args, { timeoutMs: cli.timeoutMs ?? 15_000, label: 'docker', env: { PATH: cli.path } })
  } catch (err) {
    const code = (err as { code?: string }).code
    const message = code === 'TOOL_NOT_FOUND'
      ? `the docker CLI (${cli.binary}) cannot be run: install docker or set runner.docker.binary`
      : code === 'TOOL_TIMEOUT'
        ? `docker ${args[0] ?? ''} did not answer within ${cli.timeoutMs ?? 15_000} ms: the engine may be hung`
        : `docker ${args[0] ?? ''} failed: ${(err as Error).message}`
    throw new JobError('RUNNER_FAILED', message, { cause: err })
  }
}

/** The first meaningful line of what docker printed on stderr, for messages. */
export function firstLine (text: string): string {
  // Not the CLI's hint after an error ("Run 'docker run --help'…", older CLIs "See 'docker run --help'.").
  const line = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !/^(Run|See) 'docker/.test(l)) ?? ''
  return line.replace(/^docker: /, '').slice(0, 300)
}

// ── readiness ───────────────────────────────────────────────────────────────────────────────────────

/** Whether this engine can run jobs on GPUs of each vendor; a problem is a sentence for the operator. */
export interface DockerReadiness {
  /** The engine's server version, or null when it did not answer. */
  serverVersion: string | null
  /** Problems that keep all GPUs out of the offer (the engine is unreachable). */
  engine: string | null
  /** Problems per vendor (NVIDIA runtime missing, /dev/kfd or a render node missing). */
  vendors: Partial<Record<GpuVendorKind, string>>
}

/** The parts of `docker info --format '{{json .}}'` the checks read. */
export interface DockerInfo {
  ServerVersion?: string
  Runtimes?: Record<string, unknown>
  CDISpecDirs?: string[] | null
  DiscoveredDevices?: Array<{ Source?: string, ID?: string }> | null
}

export const NO_NVIDIA_RUNTIME = 'docker has no NVIDIA runtime: install nvidia-container-toolkit (and run `nvidia-ctk runtime configure --runtime=docker`, then restart dockerd)'

/**
 * NVIDIA GPUs can be given to containers (`--gpus`) when the engine knows an `nvidia` runtime, lists
 * NVIDIA devices discovered through CDI, or when the NVIDIA container hook is installed on the host
 * (what dockerd's `--gpus` looks for on its PATH). Pure.
 */
export function nvidiaProblem (info: DockerInfo, hookInstalled: boolean): string | null {
  const runtimes = Object.keys(info.Runtimes ?? {})
  if (runtimes.some((r) => r.toLowerCase().includes('nvidia'))) return null
  if ((info.DiscoveredDevices ?? []).some((d) => (d.ID ?? '').startsWith('nvidia.com/gpu'))) return null
  if (hookInstalled) return null
  return NO_NVIDIA_RUNTIME
}

/**
 * The docker runner's checks at start: the engine answers (its version); for NVIDIA GPUs, the NVIDIA
 * container runtime; for AMD GPUs, `/dev/kfd` and each GPU's render node. Simulated GPUs need only the
 * engine. Never throws: every failure is a problem sentence.
 */
export async function checkDockerReadiness (
  cli: DockerCli,
  gpus: ReadonlyArray<{ uuid: string, vendor: GpuVendorKind, pciBusId: string | null }>,
  host: { devRoot?: string, sysRoot?: string, hookPaths?: readonly string[] } = {}
): Promise<DockerReadiness> {
  const result: DockerReadiness = { serverVersion: null, engine: null, vendors: {} }
  let info: DockerInfo
  try {
    const out = await docker(cli, ['info', '--format', '{{json .}}'])
    if (out.exitCode !== 0) {
      result.engine = `docker engine not reachable (${firstLine(out.stderr) || `docker info exited ${String(out.exitCode)}`}): start dockerd, or check runner.docker.binary`
      return result
    }
    info = JSON.parse(out.stdout) as DockerInfo
  } catch (err) {
    result.engine = err instanceof SyntaxError ? 'docker info gave output that is not JSON: is runner.docker.binary the docker CLI?' : (err as Error).message
    return result
  }
  if (typeof info.ServerVersion !== 'string' || info.ServerVersion === '') {
    result.engine = 'docker info names no server version: the engine is not answering; start dockerd'
    return result
  }
  result.serverVersion = info.ServerVersion
  const vendors = new Set(gpus.map((g) => g.vendor))
  if (vendors.has('nvidia')) {
    const hook = await anyExists(host.hookPaths ?? cli.path.split(':').map((d) => join(d, 'nvidia-container-runtime-hook')))
    const problem = nvidiaProblem(info, hook)
    if (problem !== null) result.vendors.nvidia = problem
  }
  if (vendors.has('amd')) {
    const devRoot = host.devRoot ?? '/dev'
    if (!(await anyExists([join(devRoot, 'kfd')]))) {
      result.vendors.amd = `${join(devRoot, 'kfd')} is missing: the AMD GPU driver (amdgpu, ROCm) is not loaded, so containers cannot use AMD GPUs`
    } else {
      for (const gpu of gpus.filter((g) => g.vendor === 'amd')) {
        try {
          await renderNode(gpu, host)
        } catch (err) {
          result.vendors.amd = (err as Error).message
          break
        }
      }
    }
  }
  return result
}

async function anyExists (paths: readonly string[]): Promise<boolean> {
  for (const p of paths) {
    try {
      await stat(p)
      return true
    } catch { /* next */ }
  }
  return false
}

/**
 * The `/dev/dri/renderD<n>` node of one AMD GPU, found from its PCI address in sysfs
 * (`/sys/bus/pci/devices/<bdf>/drm/renderD<n>`). Throws JobError RUNNER_FAILED with a sentence.
 */
export async function renderNode (gpu: { uuid: string, pciBusId: string | null }, host: { devRoot?: string, sysRoot?: string } = {}): Promise<string> {
  if (gpu.pciBusId === null) throw new JobError('RUNNER_FAILED', `the probe gave no PCI address for AMD GPU ${gpu.uuid}, so its render node is unknown`)
  const bdf = normalizeBusId(gpu.pciBusId)
  const dir = join(host.sysRoot ?? '/sys', 'bus', 'pci', 'devices', bdf, 'drm')
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch {
    throw new JobError('RUNNER_FAILED', `AMD GPU ${gpu.uuid} (${bdf}) has no DRM devices in ${dir}: is the amdgpu driver loaded?`)
  }
  const node = entries.filter((e) => /^renderD\d+$/.test(e)).sort()[0]
  if (node === undefined) throw new JobError('RUNNER_FAILED', `AMD GPU ${gpu.uuid} (${bdf}) has no render node in ${dir}`)
  const path = join(host.devRoot ?? '/dev', 'dri', node)
  if (!(await anyExists([path]))) throw new JobError('RUNNER_FAILED', `${path} (the render node of AMD GPU ${gpu.uuid}) is missing`)
  return path
}

/** `0000:03:00.0` in lower case; `03:00.0` gets the domain `0000`; nvidia-smi's 8-digit domain is cut to 4. */
export function normalizeBusId (id: string): string {
  const lower = id.trim().toLowerCase()
  const parts = lower.split(':')
  if (parts.length === 2) return `0000:${lower}`
  if (parts.length === 3 && (parts[0] as string).length > 4) return `${(parts[0] as string).slice(-4)}:${parts[1] as string}:${parts[2] as string}`
  return lower
}

// ── images ──────────────────────────────────────────────────────────────────────────────────────────

/** An image present in the engine. */
export interface LocalImage {
  /** `sha256:…`: the image's content-addressed id; what the container is started from. */
  id: string
  repoTags: string[]
  /** `name@sha256:…` for images pulled from a registry; empty for images built or imported here. */
  repoDigests: string[]
  sizeBytes: number
}

/** The image as recorded with the lease: the reference the renter gave and the digests it resolved to. */
export interface ResolvedImage {
  reference: string
  id: string
  repoDigest: string | null
}

/** `docker image inspect` of one reference; null when the engine has no such image. */
export async function inspectImage (cli: DockerCli, reference: string): Promise<LocalImage | null> {
  const out = await docker(cli, ['image', 'inspect', '--format', '{{json .}}', reference])
  if (out.exitCode !== 0) {
    if (/no such (image|object)/i.test(out.stderr)) return null
    throw new JobError('RUNNER_FAILED', `docker image inspect failed: ${firstLine(out.stderr)}`)
  }
  const raw = JSON.parse(out.stdout) as { Id?: unknown, RepoTags?: unknown, RepoDigests?: unknown, Size?: unknown }
  if (typeof raw.Id !== 'string') throw new JobError('RUNNER_FAILED', 'docker image inspect gave no image id')
  const strings = (v: unknown): string[] => Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []
  return { id: raw.Id, repoTags: strings(raw.RepoTags), repoDigests: strings(raw.RepoDigests), sizeBytes: typeof raw.Size === 'number' ? raw.Size : 0 }
}

/** A reference as docker names it in RepoTags: `busybox` → `busybox:latest` (a digest reference unchanged). */
export function withDefaultTag (reference: string): string {
  if (reference.includes('@')) return reference
  const lastSlash = reference.lastIndexOf('/')
  return reference.slice(lastSlash + 1).includes(':') ? reference : `${reference}:latest`
}

/**
 * Whether `runner.docker.allowImages` lets this image run: an entry names it by reference (as given,
 * or with its default tag), by one of its tags, by one of its repo digests, or by a digest alone
 * (`sha256:…`, its id or the digest of one of its repo digests). `allow` null: any image present. Pure.
 */
export function imageAllowed (allow: readonly string[] | null, reference: string, image: LocalImage | null): boolean {
  if (allow === null) return image !== null
  const names = new Set([reference, withDefaultTag(reference)])
  if (image !== null) {
    for (const t of image.repoTags) names.add(t)
    for (const d of image.repoDigests) {
      names.add(d)
      names.add(d.slice(d.indexOf('@') + 1))
    }
    names.add(image.id)
  }
  return allow.some((entry) => names.has(entry) || names.has(withDefaultTag(entry)))
}

// ── pulls ───────────────────────────────────────────────────────────────────────────────────────────

/** Limits an owner sets on pulls (`runner.docker.pull`). */
export interface PullLimits {
  timeoutMs: number
  /** Bytes of compressed layers downloaded at most. */
  maxBytes: number
}

/** One JSON message of the engine's pull progress stream (`POST /images/create`). */
export interface PullMessage {
  status?: string
  id?: string
  progressDetail?: { current?: number, total?: number }
  error?: string
  errorDetail?: { message?: string }
}

/**
 * Tallies a pull's progress stream: bytes announced (`total` per layer) and downloaded (`current`
 * while `Downloading`, the layer's total once `Download complete`). Pure; `add` returns what changed.
 */
export class PullTally {
  readonly #total = new Map<string, number>()
  readonly #done = new Map<string, number>()

  add (message: PullMessage): void {
    const id = message.id
    if (id === undefined) return
    const detail = message.progressDetail
    if (message.status === 'Downloading' && detail !== undefined) {
      if (typeof detail.total === 'number' && detail.total > 0) this.#total.set(id, detail.total)
      if (typeof detail.current === 'number') this.#done.set(id, Math.max(this.#done.get(id) ?? 0, detail.current))
    } else if (message.status === 'Download complete') {
      this.#done.set(id, Math.max(this.#done.get(id) ?? 0, this.#total.get(id) ?? 0))
    }
  }

  /** Bytes of all layers whose size is known so far. */
  get announcedBytes (): number { return sum(this.#total.values()) }
  get downloadedBytes (): number { return sum(this.#done.values()) }
  get layers (): number { return this.#total.size }
}

const sum = (values: Iterable<number>): number => { let n = 0; for (const v of values) n += v; return n }

/** `name:tag` → { fromImage: name, tag }; `name@sha256:…` → { fromImage: name@sha256:… }. */
export function pullQuery (reference: string): string {
  if (reference.includes('@')) return `fromImage=${encodeURIComponent(reference)}`
  const full = withDefaultTag(reference)
  const colon = full.lastIndexOf(':')
  return `fromImage=${encodeURIComponent(full.slice(0, colon))}&tag=${encodeURIComponent(full.slice(colon + 1))}`
}

const MIB = 1024 * 1024

/**
 * Pulls an image through the engine's API on its unix socket, reporting progress (at most one line
 * per second and per layer change) and aborting — the engine then cancels the pull — past the time
 * limit or once the layers announced or downloaded exceed the size cap. Throws JobError
 * IMAGE_UNAVAILABLE with the reason.
 */
export async function pullImage (socketPath: string, reference: string, limits: PullLimits, progress: (text: string) => void): Promise<void> {
  const tally = new PullTally()
  let lastReport = 0
  await new Promise<void>((resolve, reject) => {
    let failure: JobError | null = null
    const fail = (message: string): void => {
      failure ??= new JobError('IMAGE_UNAVAILABLE', message)
      req.destroy()
    }
    const timer = setTimeout(() => { fail(`pulling ${reference} took longer than ${Math.round(limits.timeoutMs / 1000)} s (runner.docker.pull.timeoutSec)`) }, limits.timeoutMs)
    const req = httpRequest({ socketPath, method: 'POST', path: `/images/create?${pullQuery(reference)}` }, (res) => {
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        if (buffer.length > MIB) { fail(`the engine sent an over-long progress line while pulling ${reference}`); return }
        let nl: number
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).trim()
          buffer = buffer.slice(nl + 1)
          if (line === '') continue
          let message: PullMessage
          try { message = JSON.parse(line) as PullMessage } catch { continue }
          if (res.statusCode !== 200 || message.error !== undefined) {
            fail(`pulling ${reference} failed: ${(message.errorDetail?.message ?? message.error ?? line).slice(0, 300)}`)
            return
          }
          tally.add(message)
          if (tally.announcedBytes > limits.maxBytes || tally.downloadedBytes > limits.maxBytes) {
            fail(`${reference} is larger than this provider pulls (over ${Math.round(limits.maxBytes / MIB)} MiB, runner.docker.pull.maxBytes)`)
            return
          }
          const now = Date.now()
          if (now - lastReport >= 1000 || message.status === 'Download complete') {
            lastReport = now
            progress(`pulling ${reference}: ${(tally.downloadedBytes / MIB).toFixed(1)} of ${(tally.announcedBytes / MIB).toFixed(1)} MiB (${tally.layers} layers)`)
          }
        }
      })
      res.on('end', () => {
        clearTimeout(timer)
        if (failure !== null) { reject(failure); return }
        if (res.statusCode !== 200) { reject(new JobError('IMAGE_UNAVAILABLE', `pulling ${reference} failed: the engine answered ${String(res.statusCode)} ${firstLine(buffer)}`)); return }
        progress(`pulled ${reference}: ${(tally.downloadedBytes / MIB).toFixed(1)} MiB`)
        resolve()
      })
      res.on('error', () => { clearTimeout(timer); reject(failure ?? new JobError('IMAGE_UNAVAILABLE', `pulling ${reference} was cut short`)) })
    })
    req.on('error', (err) => {
      clearTimeout(timer)
      reject(failure ?? new JobError('IMAGE_UNAVAILABLE', `cannot reach the docker engine at ${socketPath} to pull ${reference}: ${err.message}`, { cause: err }))
    })
    req.end()
  })
}
