import { isAbsolute, normalize } from 'node:path'
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml'
import { z } from 'zod'
import { LIMITS, ZERO_ADDRESS, parseAmount, type Address, type JobSpec, type OrderRequirements } from '@gpumesh/protocol'
import { getAddress } from 'ethers'
import { DEFAULT_CHAIN_ID, DEFAULT_TOKEN_DECIMALS } from './constants.js'
import { JobFileError } from './errors.js'

/**
 * The job file (`job.yaml`): what a renter wants to run, on what, for how much. Parsed with the yaml
 * document API so that every error names the key and its line; validated with zod into a
 * fully-defaulted {@link JobFile}. See the README for every key.
 */


/** A YAML scalar that is meant as text: numbers and booleans are taken as written (`100` → "100"). */
const text = z.union([z.string(), z.number(), z.boolean()]).transform((v) => String(v))
const positiveInt = z.number().int().positive()

const jobFileSchema = z.strictObject({
  gpus: z.strictObject({
    count: positiveInt.max(LIMITS.leaseGpus),
    classes: z.array(z.string().min(1).max(LIMITS.shortString)).max(LIMITS.classes).default([]),
    minMemoryMiB: z.number().int().nonnegative().default(0),
    minComputeCapability: z.union([z.string(), z.number()]).transform((v) => String(v))
      .pipe(z.string().regex(/^\d+\.\d+$/, 'expected a compute capability like "8.0"')).nullable().default(null)
  }),
  region: z.string().min(1).max(LIMITS.shortString).nullable().default(null),
  operators: z.array(z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 0x address')).max(LIMITS.operators).default([]),
  maxPricePerGpuHour: z.string().min(1),
  budget: z.string().min(1).nullable().default(null),
  token: z.strictObject({
    address: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 0x address of 40 hex digits').default(ZERO_ADDRESS),
    decimals: z.number().int().min(0).max(36).default(DEFAULT_TOKEN_DECIMALS),
    chainId: z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d*$/, 'expected a positive integer')])
      .transform((v) => BigInt(v)).default(DEFAULT_CHAIN_ID),
    escrow: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 0x address of 40 hex digits').nullable().default(null)
  }).default({ address: ZERO_ADDRESS, decimals: DEFAULT_TOKEN_DECIMALS, chainId: DEFAULT_CHAIN_ID, escrow: null }),
  durationSec: positiveInt,
  command: z.string().min(1).max(LIMITS.command),
  args: z.array(text).max(LIMITS.args).default([]),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'), text).default({}),
  image: z.string().min(1).max(LIMITS.string).nullable().default(null),
  maxRunTimeSec: positiveInt.nullable().default(null),
  files: z.array(z.string().min(1)).default([]),
  allowSimulated: z.boolean().default(false)
})

/** A validated job file, every default filled in. Amounts are base units of the token. */
export interface JobFile {
  /** Where it was read from (as given), for messages. */
  path: string
  requirements: OrderRequirements
  maxPricePerGpuHour: bigint
  /** Most the renter pays for the whole lease; null: the price cap × GPUs × duration. */
  budget: bigint | null
  token: { address: Address, decimals: number, chainId: bigint }
  durationSec: number
  spec: JobSpec
  /** Files and directories to bundle, relative to the job file's directory. */
  files: string[]
}

/**
 * Parses and validates a job file's text. Throws {@link JobFileError} naming the key and line of the
 * first problem.
 */
export function parseJobFile (source: string, path = 'job.yaml'): JobFile {
  const lineCounter = new LineCounter()
  const doc = parseDocument(source, { lineCounter, uniqueKeys: true, prettyErrors: false })
  const syntax = doc.errors[0]
  if (syntax != null) {
    const line = syntax.linePos?.[0]?.line ?? lineCounter.linePos(syntax.pos[0]).line
    throw new JobFileError(path, '', line, `not valid YAML: ${syntax.message.split('\n')[0] ?? syntax.code}`)
  }
  if (!isMap(doc.contents)) throw new JobFileError(path, '', 1, 'expected a mapping of keys (gpus, maxPricePerGpuHour, durationSec, command, …)')

  const raw = doc.toJS() as Record<string, unknown>
  // Money is read as written, never through a float: `2.50` unquoted is taken as the text "2.50".
  for (const key of ['maxPricePerGpuHour', 'budget']) {
    const node = doc.get(key, true)
    if (isScalar(node) && typeof node.value === 'number') raw[key] = node.source ?? String(node.value)
  }
  // An unquoted 0x… address is a hexadecimal number to YAML: take it as written too.
  for (const key of ['address', 'escrow']) {
    const addressNode = doc.getIn(['token', key], true)
    if (isScalar(addressNode) && typeof addressNode.value === 'number' && addressNode.source != null) {
      (raw.token as Record<string, unknown>)[key] = addressNode.source
    }
  }
  const operatorList = doc.get('operators', true)
  if (isSeq(operatorList) && Array.isArray(raw.operators)) {
    operatorList.items.forEach((item, i) => {
      if (isScalar(item) && typeof item.value === 'number' && item.source != null) (raw.operators as unknown[])[i] = item.source
    })
  }
  const parsed = jobFileSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    if (issue == null) throw new JobFileError(path, '', null, 'invalid')
    const at = issue.path.filter((p): p is string | number => typeof p !== 'symbol')
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? ''
      const keyPath = [...at, key]
      throw new JobFileError(path, keyPath.join('.'), keyLine(doc, lineCounter, at, key), `unknown key (allowed here: ${allowedKeys(at).join(', ')})`)
    }
    const missing = doc.getIn(at, true) === undefined
    throw new JobFileError(path, at.join('.'), lineOf(doc, lineCounter, at), missing ? `missing (${issue.message.replace(/^Invalid input: /, '')})` : issue.message.replace(/^Invalid input: /, ''))
  }
  const v = parsed.data
  const fail = (key: Array<string | number>, problem: string): never => {
    throw new JobFileError(path, key.join('.'), lineOf(doc, lineCounter, key), problem)
  }

  const checksummed = (key: Array<string | number>, value: string): Address => {
    try {
      return getAddress(value) as Address
    } catch (err) {
      return fail(key, `not a valid address (${(err as Error).message.split(' (')[0] ?? 'bad checksum'})`)
    }
  }
  const tokenAddress = checksummed(['token', 'address'], v.token.address)
  const escrow = v.token.escrow == null ? null : checksummed(['token', 'escrow'], v.token.escrow)
  const amount = (key: string, value: string): bigint => {
    try {
      const parsedAmount = parseAmount(value, v.token.decimals)
      if (parsedAmount === 0n) fail([key], 'must be above 0')
      return parsedAmount
    } catch (err) {
      if (err instanceof JobFileError) throw err
      return fail([key], (err as Error).message)
    }
  }
  const maxPricePerGpuHour = amount('maxPricePerGpuHour', v.maxPricePerGpuHour)
  const budget = v.budget != null ? amount('budget', v.budget) : null
  const maxRunTimeSec = v.maxRunTimeSec ?? v.durationSec
  if (maxRunTimeSec > v.durationSec) fail(['maxRunTimeSec'], `${maxRunTimeSec} s is longer than the lease (durationSec ${v.durationSec})`)
  v.files.forEach((file, i) => {
    const normal = normalize(file)
    if (isAbsolute(file) || normal === '..' || normal.startsWith('../')) fail(['files', i], `"${file}" is outside the job file's directory: list paths relative to it`)
  })
  for (const [name, value] of Object.entries(v.env)) {
    if (value.length > LIMITS.command) fail(['env', name], `longer than ${LIMITS.command} characters`)
  }
  let operators: Address[]
  try {
    operators = v.operators.map((o) => getAddress(o) as Address)
  } catch (err) {
    return fail(['operators'], `not a valid address (${(err as Error).message.split(' (')[0] ?? 'bad checksum'})`)
  }

  return {
    path,
    requirements: {
      gpuCount: v.gpus.count,
      classes: v.gpus.classes,
      minMemoryMiB: v.gpus.minMemoryMiB,
      minComputeCapability: v.gpus.minComputeCapability,
      region: v.region,
      operators,
      escrow,
      allowSimulated: v.allowSimulated
    },
    maxPricePerGpuHour,
    budget,
    token: { address: tokenAddress, decimals: v.token.decimals, chainId: v.token.chainId },
    durationSec: v.durationSec,
    spec: { command: v.command, args: v.args, env: v.env, image: v.image, maxRunTimeSec },
    files: v.files
  }
}

/** Most the renter can be asked to pay under the job file: its budget, else price cap × GPUs × duration. */
export function jobBudget (job: JobFile): bigint {
  return job.budget ?? job.maxPricePerGpuHour * BigInt(job.requirements.gpuCount) * BigInt(job.durationSec) / 3600n
}

/** The line of the deepest node of `path` that exists (a missing key points at its parent). */
function lineOf (doc: Document, lineCounter: LineCounter, path: Array<string | number>): number | null {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)
    const range = (node as { range?: [number, number, number] } | undefined)?.range
    if (range != null) return lineCounter.linePos(range[0]).line
  }
  return null
}

/** The line of `key` inside the mapping at `path`. */
function keyLine (doc: Document, lineCounter: LineCounter, path: Array<string | number>, key: string): number | null {
  const map = path.length === 0 ? doc.contents : doc.getIn(path, true)
  if (isMap(map)) {
    for (const pair of map.items) {
      if (isScalar(pair.key) && String(pair.key.value) === key && pair.key.range != null) return lineCounter.linePos(pair.key.range[0]).line
    }
  }
  return lineOf(doc, lineCounter, path)
}

function allowedKeys (path: Array<string | number>): string[] {
  if (path.length === 0) return Object.keys(jobFileSchema.shape)
  if (path[0] === 'gpus') return Object.keys(jobFileSchema.shape.gpus.shape)
  if (path[0] === 'token') return ['address', 'decimals', 'chainId', 'escrow']
  return []
}
