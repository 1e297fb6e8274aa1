/**
 * The contracts' ABI and bytecode, compiled from `contracts/*.sol` with the pinned solc from npm.
 *
 * Nothing generated is committed: the package build (`scripts/compile-contracts.mjs`, run by the root
 * `prepare`) writes `artifacts/contracts.json`, and {@link loadContracts} compiles on demand when that
 * file is missing or was made from other sources or settings (tests running from sources, a fresh
 * checkout). The cache is keyed by a hash of the sources, the compiler version and the settings, and
 * is written atomically, so concurrent processes never read half a file.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SOLC_EVM_VERSION, SOLC_OPTIMIZER_RUNS, SOLC_VERSION } from './constants.js'
import { ContractBuildError } from './errors.js'

/** The package root: one level above `src/` (tests) or `dist/` (built code). */
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
export const CONTRACTS_DIR = join(PACKAGE_DIR, 'contracts')
export const ARTIFACTS_FILE = join(PACKAGE_DIR, 'artifacts', 'contracts.json')

export interface ContractArtifact {
  abi: unknown[]
  /** Creation bytecode, 0x-hex. */
  bytecode: string
}

export interface ContractArtifacts {
  /** sha256 over the compiler version, settings and every source. */
  sourceHash: string
  solcVersion: string
  evmVersion: string
  GpumeshEscrow: ContractArtifact
  TestToken: ContractArtifact
}

type ContractName = 'GpumeshEscrow' | 'TestToken'
const CONTRACT_NAMES: readonly ContractName[] = ['GpumeshEscrow', 'TestToken']

interface SolcOutput {
  errors?: Array<{ severity: string, formattedMessage: string }>
  contracts?: Record<string, Record<string, { abi: unknown[], evm: { bytecode: { object: string } } }>>
}

const settings = {
  evmVersion: SOLC_EVM_VERSION,
  optimizer: { enabled: true, runs: SOLC_OPTIMIZER_RUNS },
  viaIR: true,
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } }
}

async function readSources (): Promise<Record<string, string>> {
  const names = (await readdir(CONTRACTS_DIR)).filter((name) => name.endsWith('.sol')).sort()
  const sources: Record<string, string> = {}
  for (const name of names) sources[name] = await readFile(join(CONTRACTS_DIR, name), 'utf8')
  return sources
}

function hashSources (sources: Record<string, string>): string {
  const hash = createHash('sha256').update(`solc ${SOLC_VERSION}\n${JSON.stringify(settings)}\n`)
  for (const [name, content] of Object.entries(sources)) hash.update(`${name}\n${content.length}\n${content}`)
  return hash.digest('hex')
}

function compile (sources: Record<string, string>, sourceHash: string): ContractArtifacts {
  const require = createRequire(import.meta.url)
  const solc = require('solc') as { version: () => string, compile: (input: string) => string }
  const version = solc.version()
  if (!version.startsWith(`${SOLC_VERSION}+`)) {
    throw new ContractBuildError(`The installed solc is ${version}, but the contracts are built with ${SOLC_VERSION}. Run npm ci to install the pinned compiler.`)
  }
  const input = {
    language: 'Solidity',
    sources: Object.fromEntries(Object.entries(sources).map(([name, content]) => [name, { content }])),
    settings
  }
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) {
    throw new ContractBuildError(`The escrow contracts do not compile: ${errors.map((e) => e.formattedMessage).join('\n')}`)
  }
  const artifact = (name: ContractName): ContractArtifact => {
    const contract = output.contracts?.[`${name}.sol`]?.[name]
    if (contract === undefined || contract.evm.bytecode.object === '') {
      throw new ContractBuildError(`The compiler produced no bytecode for ${name}.`)
    }
    return { abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` }
  }
  return {
    sourceHash,
    solcVersion: version,
    evmVersion: SOLC_EVM_VERSION,
    GpumeshEscrow: artifact('GpumeshEscrow'),
    TestToken: artifact('TestToken')
  }
}

async function readCache (sourceHash: string): Promise<ContractArtifacts | null> {
  try {
    const cached = JSON.parse(await readFile(ARTIFACTS_FILE, 'utf8')) as Partial<ContractArtifacts>
    if (cached.sourceHash !== sourceHash) return null
    for (const name of CONTRACT_NAMES) {
      const artifact = cached[name]
      if (artifact === undefined || !Array.isArray(artifact.abi) || typeof artifact.bytecode !== 'string') return null
    }
    return cached as ContractArtifacts
  } catch {
    return null
  }
}

let loading: Promise<ContractArtifacts> | null = null

/**
 * The compiled contracts: from the cache when it matches the sources, else compiled now (a few
 * seconds) and cached. `force` compiles even when the cache matches.
 */
export async function loadContracts (options: { force?: boolean } = {}): Promise<ContractArtifacts> {
  if (options.force === true) loading = null
  loading ??= (async () => {
    const sources = await readSources()
    const sourceHash = hashSources(sources)
    const cached = options.force === true ? null : await readCache(sourceHash)
    if (cached !== null) return cached
    const artifacts = compile(sources, sourceHash)
    await mkdir(join(PACKAGE_DIR, 'artifacts'), { recursive: true })
    const tmp = `${ARTIFACTS_FILE}.${randomBytes(6).toString('hex')}.tmp`
    await writeFile(tmp, JSON.stringify(artifacts))
    await rename(tmp, ARTIFACTS_FILE)
    return artifacts
  })()
  try {
    return await loading
  } catch (err) {
    loading = null
    throw err
  }
}
