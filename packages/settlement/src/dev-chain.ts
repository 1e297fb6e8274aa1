/**
 * A local EVM node for devnets and tests: anvil from npm (`@foundry-rs/anvil`, whose platform package
 * ships the binary). It listens on 127.0.0.1 (port 0 by default: the kernel picks a free one, read
 * back from anvil's "Listening on" line), funds ten keys, and is ready once it answers `eth_chainId`
 * (polled, never slept on). `stop()` ends it (SIGTERM, then SIGKILL) and waits for its exit.
 *
 * No orphan: on POSIX anvil runs under a small `sh` watchdog that holds a pipe from this process and
 * ends anvil as soon as the pipe closes — when `stop()` closes it, and also when this process dies
 * without stopping it (a killed test runner, a crash).
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { arch, platform as osPlatform } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { DEV_CHAIN_ACCOUNTS, DEV_CHAIN_START_TIMEOUT_MS } from './constants.js'
import { DevChainError } from './errors.js'

export interface DevChainOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number
  /** Mine a block every N seconds; by default a block is mined per transaction. */
  blockTimeSec?: number
  /** Default 31337. */
  chainId?: bigint
  /** The anvil executable; by default the one shipped by `@foundry-rs/anvil` for this platform. */
  binary?: string
  /** Aborting stops the chain. */
  signal?: AbortSignal
}

export interface DevChain {
  rpcUrl: string
  chainId: bigint
  /** Private keys (0x…) of the funded accounts. */
  keys: string[]
  stop: () => Promise<void>
}

const PLATFORM_PACKAGES: Record<string, string> = {
  'linux-x64': '@foundry-rs/anvil-linux-amd64',
  'linux-arm64': '@foundry-rs/anvil-linux-arm64',
  'darwin-x64': '@foundry-rs/anvil-darwin-amd64',
  'darwin-arm64': '@foundry-rs/anvil-darwin-arm64',
  'win32-x64': '@foundry-rs/anvil-win32-amd64'
}

/** The path of the anvil binary installed by npm for this platform. */
export function anvilBinaryPath (): string {
  const platform = `${osPlatform()}-${arch()}`
  const pkg = PLATFORM_PACKAGES[platform]
  if (pkg === undefined) throw new DevChainError(`anvil has no npm build for ${platform}; install Foundry and pass its anvil as the binary.`)
  const name = platform.startsWith('win32') ? 'anvil.exe' : 'anvil'
  try {
    return createRequire(import.meta.url).resolve(`${pkg}/bin/${name}`)
  } catch (err) {
    throw new DevChainError(`The anvil binary (${pkg}) is not installed; run npm ci.`, { cause: err })
  }
}

const MAX_OUTPUT = 64 * 1024

/**
 * `sh -c WATCHDOG anvil args…`: runs anvil, and ends it when stdin reaches EOF (this process closed
 * the pipe, or died). Exits with anvil. (A background job's stdin is /dev/null unless redirected, hence fd 3.)
 */
const WATCHDOG = 'exec 3<&0; "$0" "$@" </dev/null 3<&- & pid=$!; (cat <&3 >/dev/null; kill "$pid") >/dev/null 2>&1 & exec 3<&-; wait "$pid"'

export async function startDevChain (options: DevChainOptions = {}): Promise<DevChain> {
  options.signal?.throwIfAborted()
  const binary = options.binary ?? anvilBinaryPath()
  const args = ['--host', '127.0.0.1', '--port', String(options.port ?? 0), '--accounts', String(DEV_CHAIN_ACCOUNTS)]
  if (options.blockTimeSec !== undefined) args.push('--block-time', String(options.blockTimeSec))
  if (options.chainId !== undefined) args.push('--chain-id', options.chainId.toString())
  const watchdog = osPlatform() !== 'win32'
  const child = watchdog
    ? spawn('/bin/sh', ['-c', WATCHDOG, binary, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })

  let output = ''
  let exited = false
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => { exited = true; resolve() })
    child.once('error', () => { exited = true; resolve() })
  })
  let spawnError: Error | null = null
  child.once('error', (err) => { spawnError = err })
  const onData = (chunk: Buffer): void => { if (output.length < MAX_OUTPUT) output += chunk.toString('utf8') }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)

  const stop = async (): Promise<void> => {
    if (!exited) {
      if (watchdog) child.stdin?.end()
      else child.kill('SIGTERM')
      const killTimer = setTimeout(() => { if (!exited) child.kill('SIGKILL') }, 3000)
      await exitPromise
      clearTimeout(killTimer)
    }
    options.signal?.removeEventListener('abort', onAbort)
  }
  const onAbort = (): void => { void stop() }
  options.signal?.addEventListener('abort', onAbort, { once: true })

  try {
    const deadline = Date.now() + DEV_CHAIN_START_TIMEOUT_MS
    let rpcUrl: string | null = null
    let chainId: bigint | null = null
    while (chainId === null) {
      if (spawnError !== null) throw new DevChainError(`anvil could not be started: ${(spawnError as Error).message}.`, { cause: spawnError })
      if (exited) throw new DevChainError(`anvil exited before it was ready: ${lastLines(output)}`)
      if (Date.now() > deadline) throw new DevChainError(`anvil did not answer within ${DEV_CHAIN_START_TIMEOUT_MS} ms: ${lastLines(output)}`)
      options.signal?.throwIfAborted()
      if (rpcUrl === null) {
        const match = /Listening on (\d+\.\d+\.\d+\.\d+):(\d+)/.exec(output)
        if (match !== null) rpcUrl = `http://${match[1]}:${match[2]}`
      }
      if (rpcUrl !== null) chainId = await tryChainId(rpcUrl)
      if (chainId === null) await delay(25)
    }
    const keys = parseKeys(output)
    if (keys.length === 0) throw new DevChainError(`anvil printed no funded keys: ${lastLines(output)}`)
    child.stdout.off('data', onData)
    child.stderr.off('data', onData)
    child.stdout.resume()
    child.stderr.resume()
    return { rpcUrl: rpcUrl as string, chainId, keys, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

async function tryChainId (rpcUrl: string): Promise<bigint | null> {
  try {
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(1000)
    })
    const body = await response.json() as { result?: unknown }
    return typeof body.result === 'string' ? BigInt(body.result) : null
  } catch {
    return null
  }
}

/** The "Private Keys" section anvil prints at start: lines like `(0) 0xac09…`. */
function parseKeys (output: string): string[] {
  const section = output.split('Private Keys')[1]?.split('Wallet')[0] ?? ''
  return [...section.matchAll(/\(\d+\)\s+(0x[0-9a-fA-F]{64})/g)].map((m) => m[1] as string)
}

function lastLines (output: string): string {
  return output.trim().split('\n').slice(-5).join(' / ')
}
