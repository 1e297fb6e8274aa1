import { spawn } from 'node:child_process'
import { MAX_TOOL_OUTPUT_BYTES } from './constants.js'
import { ProbeToolError } from './errors.js'

export interface RunToolOptions {
  timeoutMs: number
  signal?: AbortSignal | undefined
  maxOutputBytes?: number | undefined
  /** Name used in messages; default the file's base name. */
  label?: string | undefined
  /** Environment of the child; default the parent's. */
  env?: Record<string, string | undefined> | undefined
}

export interface ToolOutput {
  stdout: string
  stderr: string
  /** null when the child was ended by a signal. */
  exitCode: number | null
}

/**
 * Runs a program without a shell and without blocking the event loop. Resolves with its output and
 * exit code whatever the code; rejects with a `ProbeToolError` when the program does not exist
 * (TOOL_NOT_FOUND), runs past `timeoutMs` (TOOL_TIMEOUT, the child is killed and not waited for:
 * a hung driver can leave it unkillable) or is aborted (ABORTED).
 */
export async function runTool (file: string, args: readonly string[], options: RunToolOptions): Promise<ToolOutput> {
  const label = options.label ?? toolLabel(file)
  const cap = options.maxOutputBytes ?? MAX_TOOL_OUTPUT_BYTES
  if (options.signal?.aborted === true) throw new ProbeToolError(label, 'ABORTED', `${label} was not run: probing was cancelled`)
  return await new Promise<ToolOutput>((resolve, reject) => {
    let settled = false
    const out: Buffer[] = []
    const err: Buffer[] = []
    let outBytes = 0
    let errBytes = 0
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true, ...(options.env !== undefined ? { env: options.env } : {}) })

    const finish = (fn: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      fn()
    }
    const kill = (): void => {
      child.stdout?.destroy()
      child.stderr?.destroy()
      child.kill('SIGKILL')
    }
    const onAbort = (): void => {
      kill()
      finish(() => { reject(new ProbeToolError(label, 'ABORTED', `${label} was stopped: probing was cancelled`)) })
    }
    const timer = setTimeout(() => {
      kill()
      finish(() => {
        reject(new ProbeToolError(label, 'TOOL_TIMEOUT', `${label} did not answer within ${options.timeoutMs} ms; the GPU driver may be hung`))
      })
    }, options.timeoutMs)
    options.signal?.addEventListener('abort', onAbort, { once: true })

    child.stdout?.on('data', (chunk: Buffer) => {
      if (outBytes < cap) out.push(chunk)
      outBytes += chunk.length
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      if (errBytes < cap) err.push(chunk)
      errBytes += chunk.length
    })
    child.on('error', (e: NodeJS.ErrnoException) => {
      kill()
      finish(() => {
        if (e.code === 'ENOENT') reject(new ProbeToolError(label, 'TOOL_NOT_FOUND', `${file} was not found`, { cause: e }))
        else if (e.code === 'EACCES') reject(new ProbeToolError(label, 'TOOL_NOT_FOUND', `${file} cannot be run (permission denied)`, { cause: e }))
        else reject(new ProbeToolError(label, 'TOOL_FAILED', `${file} could not be started (${e.code ?? e.message})`, { cause: e }))
      })
    })
    child.on('close', (code) => {
      finish(() => {
        resolve({
          stdout: Buffer.concat(out).subarray(0, cap).toString('utf8'),
          stderr: Buffer.concat(err).subarray(0, cap).toString('utf8'),
          exitCode: code
        })
      })
    })
  })
}

/** `nvidia-smi` for `/usr/bin/nvidia-smi`: the name used in messages and issue sources. */
export function toolLabel (file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file
  return base.replace(/\.exe$/i, '')
}
