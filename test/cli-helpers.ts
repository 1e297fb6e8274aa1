/**
 * Running the built `gpumesh` CLI (`npx tsc -b` first) as a child process, the way a person does.
 */
import { expect, vi } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from './provider-helpers.js'

export const CLI = fileURLToPath(new URL('../packages/cli/bin/gpumesh.js', import.meta.url))

export interface CliRun { code: number | null, stdout: string, stderr: string }

export interface CliOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** The child is pushed here, for the suite's cleanup to kill what is still running. */
  children?: ChildProcess[]
  /** Run the child as this user and group (the tests run as root in CI; some check what a plain user sees). */
  uid?: number
  gid?: number
}

/** A `gpumesh` child process and what it printed so far. */
export interface CliChild {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** stdout and stderr, interleaved as they came. */
  output: () => string
  /** Its exit code (null when a signal ended it); rejects when it could not be started. */
  exited: Promise<number | null>
}

/** Starts `gpumesh ...args` as a child process: the one way the scenario tests run the CLI. */
export function spawnCli (args: string[], options: CliOptions = {}): CliChild {
  const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env, cwd: options.cwd, uid: options.uid, gid: options.gid, stdio: ['ignore', 'pipe', 'pipe'] })
  options.children?.push(child)
  let stdout = ''
  let stderr = ''
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); output += d.toString() })
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code) => { resolve(code) })
  })
  exited.catch(() => {}) // a caller that never awaits it still hears of the failure through its own checks
  return { child, stdout: () => stdout, stderr: () => stderr, output: () => output, exited }
}

/** Runs `gpumesh ...args` to completion; rejects (after killing it) when it runs past `timeoutMs`. */
export async function runCli (args: string[], options: CliOptions & { timeoutMs?: number } = {}): Promise<CliRun> {
  const run = spawnCli(args, options)
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { run.child.kill('SIGKILL'); reject(new Error(`gpumesh ${args.join(' ')} timed out: ${run.stderr()}`)) }, options.timeoutMs ?? 60_000)
  })
  try {
    const code = await Promise.race([run.exited, timedOut])
    return { code, stdout: run.stdout(), stderr: run.stderr() }
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Starts a long-running `gpumesh ...args` (a daemon, a matcher) and resolves once `ready` holds for what
 * it printed; throws, with its output, when it exits first or is not ready within `timeoutMs`.
 */
export async function startCli (args: string[], ready: (output: string) => boolean | Promise<boolean>, options: CliOptions & { timeoutMs?: number } = {}): Promise<CliChild> {
  const run = spawnCli(args, options)
  await vi.waitFor(async () => {
    if (run.child.exitCode != null) throw new Error(`gpumesh ${args.join(' ')} exited ${run.child.exitCode}: ${run.output()}`)
    expect(await ready(run.output()), `gpumesh ${args.join(' ')} is not ready: ${run.output()}`).toBe(true)
  }, { timeout: options.timeoutMs ?? 30_000 })
  return run
}

/** What `provider.json` holds, as the scenario tests read it. */
export interface ProviderJson { pid: number, peerId: string, addresses: string[], api: { url: string, token: string } }

export interface SpawnedDaemon {
  child: ChildProcess
  /** provider.json of this daemon; null when it exited instead of starting. */
  info: ProviderJson | null
  /** Everything it printed so far (stdout and stderr). */
  output: () => string
}

export interface DaemonOptions {
  env: NodeJS.ProcessEnv
  children: ChildProcess[]
  previousPid?: number | null
  args?: string[]
}

/**
 * `gpumesh provider start --data-dir DIR` as a child process; resolves once a daemon other than
 * `previousPid` has written provider.json and said it runs, or once the child exited (then `info` is
 * null, unless `mustStart`, which throws with its output). The child is pushed to `children` for cleanup.
 */
export async function spawnDaemon (dataDir: string, options: DaemonOptions & { mustStart?: true }): Promise<SpawnedDaemon & { info: ProviderJson }>
export async function spawnDaemon (dataDir: string, options: DaemonOptions & { mustStart: false }): Promise<SpawnedDaemon>
export async function spawnDaemon (dataDir: string, options: DaemonOptions & { mustStart?: boolean }): Promise<SpawnedDaemon> {
  const { child, output } = spawnCli(['provider', 'start', '--data-dir', dataDir, '--log-level', 'warn', ...(options.args ?? [])], { env: options.env, children: options.children })
  const file = join(dataDir, 'provider.json')
  const read = async (): Promise<ProviderJson | null> => {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as ProviderJson
    } catch {
      return null // not there yet
    }
  }
  let info: ProviderJson | null = null
  await vi.waitFor(async () => {
    if (child.exitCode != null) return
    info = output().includes('running') ? await read() : null
    expect(info !== null && info.pid !== options.previousPid, `the provider has not started yet: ${output()}`).toBe(true)
  }, { timeout: 30_000 })
  if (child.exitCode != null) {
    if (options.mustStart !== false) throw new Error(`provider exited ${child.exitCode}: ${output()}`)
    return { child, info: null, output }
  }
  return { child, info, output }
}

/**
 * The config.yaml of a scenario daemon: `gpus` simulated H100-SXM-80GB at 2.00 a GPU-hour, listening on
 * 127.0.0.1 only (no mDNS), its API on port 0; the `more` lines (billing, runner, ...) follow.
 */
export function daemonConfig (gpus: number, more: string[] = []): string {
  return [
    'probe:',
    `  simulate: [{ model: H100-SXM-80GB, count: ${gpus} }]`,
    'network:',
    '  listen: [/ip4/127.0.0.1/tcp/0]',
    '  mdns: false',
    'api:',
    '  port: 0',
    'pricing:',
    '  perGpuHour: { H100-SXM-80GB: "2.00" }',
    ...more,
    ''
  ].join('\n')
}

/**
 * A data dir for a scenario daemon: a new temp dir, `gpumesh init` on it (which must succeed), then
 * `config` as its config.yaml. `remove` deletes it.
 */
export async function initDaemonDir (config: string, options: CliOptions = {}): Promise<{ dir: string, remove: () => Promise<void> }> {
  const { dir, remove } = await tempDir()
  const init = await runCli(['init', '--data-dir', dir], options)
  expect(init.code, init.stderr).toBe(0)
  await writeFile(join(dir, 'config.yaml'), config)
  return { dir, remove }
}

/** SIGKILLs every child still running: the scenario suites' cleanup. */
export function killChildren (children: ChildProcess[]): void {
  for (const child of children) if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
}
