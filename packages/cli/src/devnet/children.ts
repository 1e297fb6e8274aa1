import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { CliError } from '../errors.js'

/** The built `gpumesh` entry point: the devnet runs the product's own commands as child processes. */
export const GPUMESH_BIN = fileURLToPath(new URL('../../bin/gpumesh.js', import.meta.url))

/** How long a child has to stop after SIGINT before it is killed. */
const STOP_GRACE_MS = 10_000

export interface Child {
  name: string
  process: ChildProcess
  /** Where its stdout and stderr go. */
  logFile: string
  /** Resolves with the exit code (or 128 + signal number) once it has exited. */
  exited: Promise<number>
  /** Everything it wrote, in memory as well (capped), for error messages. */
  output: () => string
}

export interface SpawnOptions {
  env: Record<string, string | undefined>
  cwd: string
  logFile: string
  /** Called with each complete line of stdout / stderr as it comes. */
  onStdout?: (line: string) => void
  onStderr?: (line: string) => void
}

const MAX_KEPT = 256 * 1024

/**
 * The devnet's child processes: each `gpumesh …` it starts is registered here, logs to its own file,
 * and `stopAll()` sends each SIGINT (the commands stop cleanly on it), waits, and kills what is left.
 */
export class Children {
  readonly #children: Child[] = []

  start (name: string, args: string[], o: SpawnOptions): Child {
    const child = spawn(process.execPath, [GPUMESH_BIN, ...args], { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] })
    const log: WriteStream = createWriteStream(o.logFile, { flags: 'a', mode: 0o600 })
    let kept = ''
    const keep = (text: string): void => { if (kept.length < MAX_KEPT) kept += text }
    const lines = (each: ((line: string) => void) | undefined): ((chunk: Buffer) => void) => {
      let partial = ''
      return (chunk) => {
        const text = chunk.toString('utf8')
        log.write(text)
        keep(text)
        if (each == null) return
        partial += text
        const parts = partial.split('\n')
        partial = parts.pop() ?? ''
        for (const line of parts) each(line)
      }
    }
    child.stdout?.on('data', lines(o.onStdout))
    child.stderr?.on('data', lines(o.onStderr))
    const exited = new Promise<number>((resolve) => {
      child.once('error', (err) => { keep(`could not start: ${err.message}\n`); resolve(127) })
      child.once('close', (code, signal) => {
        log.end()
        resolve(code ?? (signal != null ? 128 + (signalNumber(signal) ?? 0) : 1))
      })
    })
    const entry: Child = { name, process: child, logFile: o.logFile, exited, output: () => kept }
    this.#children.push(entry)
    return entry
  }

  /** Waits until `ready()` holds, polling; fails with a sentence if the child exits first or time runs out. */
  async waitFor (child: Child, what: string, ready: () => Promise<boolean>, o: { timeoutMs: number, signal: AbortSignal }): Promise<void> {
    const deadline = Date.now() + o.timeoutMs
    for (;;) {
      o.signal.throwIfAborted()
      if (child.process.exitCode != null || child.process.signalCode != null) {
        throw new CliError('DEVNET_CHILD_EXITED', `The ${child.name} exited before ${what}: ${lastLines(child.output())} (its log: ${child.logFile}).`)
      }
      if (await ready()) return
      if (Date.now() > deadline) throw new CliError('DEVNET_TIMEOUT', `The ${child.name} did not get to ${what} within ${Math.round(o.timeoutMs / 1000)} s (its log: ${child.logFile}).`)
      await sleep(100, undefined, { signal: o.signal })
    }
  }

  /** Resolves with the first of the children running now to exit (a daemon that should have kept running). */
  async firstExit (): Promise<Child> {
    const running = this.#children.filter((c) => c.process.exitCode == null && c.process.signalCode == null)
    return await Promise.race(running.map(async (c) => { await c.exited; return c }))
  }

  /** Every child's pid, started and still running. */
  pids (): number[] {
    return this.#children.filter((c) => c.process.exitCode == null && c.process.signalCode == null && c.process.pid != null).map((c) => c.process.pid as number)
  }

  /** SIGINT to every running child (newest first), then SIGKILL to any still running after the grace period. */
  async stopAll (): Promise<void> {
    const running = this.#children.filter((c) => c.process.exitCode == null && c.process.signalCode == null).reverse()
    for (const c of running) c.process.kill('SIGINT')
    await Promise.all(running.map(async (c) => {
      const timer = setTimeout(() => { c.process.kill('SIGKILL') }, STOP_GRACE_MS)
      await c.exited
      clearTimeout(timer)
    }))
  }
}

export function lastLines (text: string, n = 3): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '')
  return lines.length === 0 ? 'it printed nothing' : lines.slice(-n).join(' / ')
}

export async function readJson<T> (path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch {
    return null
  }
}

function signalNumber (signal: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal]
}
