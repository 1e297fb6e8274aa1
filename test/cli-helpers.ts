/**
 * Running the built `gpumesh` CLI (`npx tsc -b` first) as a child process, the way a person does.
 */
import { spawn } from 'node:child_process'
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
