/**
 * Running the built `gpumesh` CLI (`npx tsc -b` first) as a child process, the way a person does.
 */
import { expect, vi } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../packages/cli/bin/gpumesh.js', import.meta.url))

export interface CliRun { code: number | null, stdout: string, stderr: string }

/** Runs `gpumesh ...args` to completion; rejects (after killing it) when it runs past `timeoutMs`. */
export async function runCli (args: string[], options: { env?: NodeJS.ProcessEnv, cwd?: string, timeoutMs?: number } = {}): Promise<CliRun> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`gpumesh ${args.join(' ')} timed out: ${stderr}`)) }, options.timeoutMs ?? 60_000)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
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

/**
 * `gpumesh provider start --data-dir DIR` as a child process; resolves once a daemon other than
 * `previousPid` has written provider.json and said it runs, or once the child exited (then `info` is
 * null, unless `mustStart`, which throws with its output). The child is pushed to `children` for cleanup.
 */
export async function spawnDaemon (dataDir: string, options: {
  env: NodeJS.ProcessEnv
  children: ChildProcess[]
  previousPid?: number | null
  args?: string[]
  mustStart?: boolean
}): Promise<SpawnedDaemon> {
  const child = spawn(process.execPath, [CLI, 'provider', 'start', '--data-dir', dataDir, '--log-level', 'warn', ...(options.args ?? [])], { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] })
  options.children.push(child)
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
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
    info = output.includes('running') ? await read() : null
    expect(info !== null && info.pid !== options.previousPid, `the provider has not started yet: ${output}`).toBe(true)
  }, { timeout: 30_000 })
  if (child.exitCode != null) {
    if (options.mustStart !== false) throw new Error(`provider exited ${child.exitCode}: ${output}`)
    return { child, info: null, output: () => output }
  }
  return { child, info, output: () => output }
}
