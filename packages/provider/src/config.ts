import { z } from 'zod'
import { ZERO_ADDRESS, parseAmount } from '@gpumesh/protocol'
import { ConfigError, type ConfigIssue } from './errors.js'
import { defaultGpuClasses } from './probe/gpu-classes.js'

/**
 * The provider's configuration: one schema, validated once at the edge into a read-only, fully
 * defaulted object. Layers, each overriding the one before: defaults ← config.yaml ← GPUMESH_*
 * environment variables ← command-line flags. Arrays replace, they do not concatenate.
 */

const ADDRESS = /^0x[0-9a-fA-F]{40}$/

const address = z.string().regex(ADDRESS, 'a 0x-prefixed 20-byte hex address')
/** A price as decimal text in token units ("2.50"); converted to base units after validation. */
const price = z.string().regex(/^\d+(\.\d+)?$/, 'a decimal amount in token units, like "2.50"')
const seconds = z.number().int().positive()
const port = z.number().int().min(0).max(65535)

const probeSchema = z.object({
  nvidiaSmi: z.string().min(1).nullable().default(null),
  amdSmi: z.string().min(1).nullable().default(null),
  rocmSmi: z.string().min(1).nullable().default(null),
  sysfsRoot: z.string().min(1).nullable().default(null),
  timeoutMs: z.number().int().min(100).max(600_000).default(10_000),
  intervalSec: seconds.default(30),
  maxTemperatureC: z.number().int().min(30).max(150).default(90),
  /** Offer GPUs whose health (temperature, ECC) the tools cannot read. Off: such GPUs are not offered. */
  allowUnknownHealth: z.boolean().default(false),
  simulate: z.array(z.object({
    model: z.string().min(1),
    count: z.number().int().min(1).max(64)
  }).strict()).default([])
}).strict()

const networkSchema = z.object({
  listen: z.array(z.string().startsWith('/')).min(1).default(['/ip4/0.0.0.0/tcp/4001']),
  announce: z.array(z.string().startsWith('/')).default([]),
  bootstrap: z.array(z.string().startsWith('/')).default([]),
  mdns: z.boolean().default(true),
  dht: z.boolean().default(false)
}).strict()

const pricingSchema = z.object({
  token: address.default(ZERO_ADDRESS),
  tokenDecimals: z.number().int().min(0).max(36).default(6),
  chainId: z.number().int().positive().default(31337),
  /** Price per GPU-hour for a class without its own entry; null means such GPUs are not offered. */
  defaultPerGpuHour: price.nullable().default(null),
  /** Price per GPU-hour per model class, e.g. { "H100-SXM-80GB": "2.49" }. */
  perGpuHour: z.record(z.string(), price).default({}),
  /** Percent taken off every price (a standing spot discount). */
  spotDiscountPercent: z.number().int().min(0).max(90).default(0),
  surge: z.object({
    enabled: z.boolean().default(false),
    /** Utilisation of this host's GPUs (leased share, percent) above which the surge starts. */
    thresholdPercent: z.number().int().min(0).max(100).default(75),
    /** Surcharge at 100% utilisation, percent; linear from the threshold. */
    maxPercent: z.number().int().min(0).max(400).default(50)
  }).strict().prefault({})
}).strict()

const leasesSchema = z.object({
  minDurationSec: seconds.default(60),
  maxDurationSec: seconds.default(7 * 24 * 3600),
  maxConcurrent: z.number().int().min(1).max(1024).default(16),
  /** A job must start this long after acceptance or the lease expires and frees its GPUs. */
  startDeadlineSec: seconds.default(300),
  /** If not empty, only these renter addresses may lease. */
  allowRenters: z.array(address).default([]),
  denyRenters: z.array(address).default([]),
  /** If not empty, proposals are taken only from these matcher peer ids (a renter's own is always taken). */
  trustedMatchers: z.array(z.string().min(1)).default([]),
  /** Proposals one peer may send per minute before RATE_LIMITED. */
  proposalsPerMinutePerPeer: z.number().int().min(1).default(120)
}).strict()

const billingSchema = z.object({
  intervalSec: seconds.max(3600).default(60),
  /** How long after a usage report a voucher may arrive before the job is stopped as unpaid. */
  paymentGraceSec: seconds.max(3600).default(60)
}).strict()

const offersSchema = z.object({
  republishSec: seconds.default(30),
  // Receivers ignore offers that claim to live longer than a day (DEFAULT_MAX_OFFER_LIFETIME_MS).
  ttlSec: seconds.max(86_400).default(120),
  region: z.string().min(1).max(64).nullable().default(null),
  /** A fleet operator's signed membership for this node (`gpumesh fleet sign`), carried in offers; relative to the data directory. */
  fleetMembership: z.string().min(1).nullable().default(null)
}).strict()

const runnerSchema = z.object({
  /**
   * Which runner executes renters' jobs. `none` accepts no jobs. `process` runs renters' code on this
   * host, as `runner.process.user` (or, with `runner.process.sameUser`, as the daemon's user). `docker`
   * isolates in containers.
   */
  kind: z.enum(['none', 'process', 'docker']).default('none'),
  stopGraceSec: seconds.max(3600).default(30),
  maxBundleBytes: z.number().int().positive().default(1024 * 1024 * 1024),
  artifactRetentionSec: seconds.default(7 * 24 * 3600),
  process: z.object({
    /**
     * The account jobs of the process runner run as (a name, a uid or uid:gid), never the daemon's
     * own: then a job cannot read the data directory (keys, API token) or the daemon's environment.
     * Needs the daemon to run as root. Jobs then live in `jobsDir`, outside the data directory.
     */
    user: z.string().min(1).nullable().default(null),
    /** Where jobs live when `user` is set: a directory outside the data directory, null for `<dataDir>/jobs`. */
    jobsDir: z.string().startsWith('/', 'an absolute path').nullable().default(null),
    /** Run jobs as the daemon's own user, able to read its keys: only when every renter is trusted with them. */
    sameUser: z.boolean().default(false)
  }).strict().prefault({}),
  docker: z.object({
    binary: z.string().min(1).default('docker'),
    memory: z.string().min(1).nullable().default(null),
    cpus: z.number().positive().nullable().default(null),
    network: z.enum(['none', 'bridge', 'host']).default('none'),
    /** Images jobs may use (name, name:tag, name@sha256:…, or sha256:… alone); empty: any image present on this host. */
    allowImages: z.array(z.string().min(1).max(512)).default([]),
    /** Time an allowed image that is not present may take to pull; 0: never pull. */
    pullTimeoutSec: z.number().int().min(0).max(3600).default(100),
    /** Compressed bytes a pull may download at most. */
    pullMaxBytes: z.number().int().positive().default(10 * 1024 * 1024 * 1024),
    /** The engine's API socket (pulls go through it, for their progress in bytes). */
    socket: z.string().min(1).default('/var/run/docker.sock')
  }).strict().prefault({})
}).strict()

const settlementSchema = z.object({
  /** `offchain`: vouchers are exported in batches (`gpumesh settle export`); `onchain`: redeemed at the escrow. */
  mode: z.enum(['offchain', 'onchain']).default('offchain'),
  rpcUrl: z.string().url().nullable().default(null),
  escrowAddress: address.nullable().default(null),
  /** The daemon redeems on its own: every N minutes, and/or as soon as what is unredeemed reaches an amount. */
  autoRedeem: z.object({
    everyMinutes: z.number().int().min(1).max(7 * 24 * 60).nullable().default(null),
    /** Token units ("25.00"): redeem once this much is vouchered but not yet redeemed; null: only on the timer. */
    whenUnredeemedAbove: price.nullable().default(null)
  }).strict().prefault({})
}).strict()

const apiSchema = z.object({
  enabled: z.boolean().default(true),
  host: z.enum(['127.0.0.1', '::1', 'localhost']).default('127.0.0.1'),
  port: port.default(7456)
}).strict()

export const providerConfigSchema = z.object({
  dataDir: z.string().min(1),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  network: networkSchema.prefault({}),
  probe: probeSchema.prefault({}),
  pricing: pricingSchema.prefault({}),
  leases: leasesSchema.prefault({}),
  billing: billingSchema.prefault({}),
  offers: offersSchema.prefault({}),
  runner: runnerSchema.prefault({}),
  settlement: settlementSchema.prefault({}),
  api: apiSchema.prefault({})
}).strict()

type ParsedConfig = z.output<typeof providerConfigSchema>

type DeepReadonly<T> = T extends Array<infer U> ? ReadonlyArray<DeepReadonly<U>>
  : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T

/** The validated configuration, with prices converted to base units. */
export type ProviderConfig = DeepReadonly<Omit<ParsedConfig, 'pricing' | 'settlement'> & {
  pricing: Omit<ParsedConfig['pricing'], 'defaultPerGpuHour' | 'perGpuHour'> & {
    defaultPerGpuHour: bigint | null
    perGpuHour: Record<string, bigint>
  }
  settlement: Omit<ParsedConfig['settlement'], 'autoRedeem'> & {
    autoRedeem: { everyMinutes: number | null, whenUnredeemedAbove: bigint | null }
  }
}>

/** The escrow contract this provider's vouchers are signed for: the zero address when it settles off-chain. */
export function settlementEscrow (config: Pick<ProviderConfig, 'settlement'>): `0x${string}` {
  const { mode, escrowAddress } = config.settlement
  return (mode === 'onchain' && escrowAddress != null ? escrowAddress : ZERO_ADDRESS) as `0x${string}`
}

/** A partial configuration as one layer gives it (file, environment or flags). */
export type ConfigLayer = Record<string, unknown>

/** Environment variables that name a key differently from the generated GPUMESH_<PATH> name. */
const ENV_ALIASES: Record<string, string> = {
  GPUMESH_HOME: 'dataDir',
  GPUMESH_NVIDIA_SMI: 'probe.nvidiaSmi',
  GPUMESH_AMD_SMI: 'probe.amdSmi',
  GPUMESH_ROCM_SMI: 'probe.rocmSmi',
  GPUMESH_SYSFS_ROOT: 'probe.sysfsRoot'
}

/** Environment variables that are not configuration keys (read by the CLI itself). */
const ENV_NOT_CONFIG = new Set(['GPUMESH_PASSWORD', 'GPUMESH_PASSWORD_FILE', 'GPUMESH_CONFIG'])

/** `probe.maxTemperatureC` → `GPUMESH_PROBE_MAX_TEMPERATURE_C`. */
export function envNameForKey (path: string): string {
  return 'GPUMESH_' + path.split('.')
    .map((segment) => segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
    .join('_')
}

/** Every leaf key path of the configuration with its default value, in schema order. */
export function configKeys (): Array<{ path: string, defaultValue: unknown }> {
  const defaults = providerConfigSchema.parse({ dataDir: '~/.gpumesh' })
  const out: Array<{ path: string, defaultValue: unknown }> = []
  const walk = (value: unknown, path: string): void => {
    if (value != null && typeof value === 'object' && !Array.isArray(value) && path !== 'pricing.perGpuHour') {
      for (const [key, child] of Object.entries(value)) walk(child, path === '' ? key : `${path}.${key}`)
      return
    }
    out.push({ path, defaultValue: value })
  }
  walk(defaults, '')
  return out
}

/**
 * Turns GPUMESH_* variables into a config layer. Values are read as the key's default type: numbers,
 * booleans (true/false/1/0), and lists (comma-separated, or a JSON array).
 */
export function configFromEnv (env: Record<string, string | undefined>): ConfigLayer {
  const byEnvName = new Map<string, { path: string, defaultValue: unknown }>()
  for (const key of configKeys()) byEnvName.set(envNameForKey(key.path), key)
  for (const [name, path] of Object.entries(ENV_ALIASES)) {
    const key = configKeys().find((k) => k.path === path)
    if (key != null) byEnvName.set(name, key)
  }

  const layer: ConfigLayer = {}
  const issues: ConfigIssue[] = []
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('GPUMESH_') || raw == null || raw === '' || ENV_NOT_CONFIG.has(name)) continue
    const key = byEnvName.get(name)
    if (key == null) continue
    try {
      setPath(layer, key.path, coerceEnvValue(raw, key.defaultValue, key.path))
    } catch (err) {
      issues.push({ path: key.path, value: raw, expected: (err as Error).message, source: name })
    }
  }
  if (issues.length > 0) throw new ConfigError(issues)
  return layer
}

function coerceEnvValue (raw: string, defaultValue: unknown, path: string): unknown {
  if (typeof defaultValue === 'number' || path === 'pricing.chainId' || path === 'runner.docker.cpus') {
    const n = Number(raw)
    if (!Number.isFinite(n)) throw new Error('a number')
    return n
  }
  if (typeof defaultValue === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(raw)) return true
    if (/^(false|0|no|off)$/i.test(raw)) return false
    throw new Error('true or false')
  }
  if (Array.isArray(defaultValue)) {
    if (raw.trim().startsWith('[')) {
      try { return JSON.parse(raw) } catch (err) { throw new Error('a JSON array or a comma-separated list', { cause: err }) }
    }
    return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  }
  return raw
}

function setPath (target: ConfigLayer, path: string, value: unknown): void {
  const segments = path.split('.')
  let node: Record<string, unknown> = target
  for (const segment of segments.slice(0, -1)) {
    const next = node[segment]
    if (next == null || typeof next !== 'object' || Array.isArray(next)) node[segment] = {}
    node = node[segment] as Record<string, unknown>
  }
  node[segments[segments.length - 1] as string] = value
}

/** Later layers win; objects merge key by key; arrays and scalars replace. */
export function mergeLayers (...layers: ConfigLayer[]): ConfigLayer {
  const out: ConfigLayer = {}
  for (const layer of layers) mergeInto(out, layer)
  return out
}

function mergeInto (target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    if (value === undefined) continue
    const existing = target[key]
    if (isPlainObject(value) && isPlainObject(existing)) {
      mergeInto(existing, value)
    } else {
      target[key] = isPlainObject(value) ? mergeLayers(value) : value
    }
  }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value != null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * Validates the merged layers. Throws a ConfigError naming every bad key, its value and what is
 * expected; nothing starts on a bad config.
 */
export function parseProviderConfig (...layers: ConfigLayer[]): ProviderConfig {
  const merged = mergeLayers(...layers)
  const result = providerConfigSchema.safeParse(merged)
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => describeIssue(issue, merged)))
  }
  const parsed = result.data
  const issues: ConfigIssue[] = []
  const decimals = parsed.pricing.tokenDecimals
  const toBaseUnits = (path: string, text: string): bigint => {
    try {
      return parseAmount(text, decimals)
    } catch {
      // Not parseAmount's own message: it repeats the value, which the issue already shows.
      issues.push({ path, value: text, expected: `an amount with at most ${decimals} decimals (pricing.tokenDecimals)` })
      return 0n
    }
  }
  const perGpuHour: Record<string, bigint> = {}
  for (const [cls, text] of Object.entries(parsed.pricing.perGpuHour)) {
    perGpuHour[cls] = toBaseUnits(`pricing.perGpuHour.${cls}`, text)
  }
  const defaultPerGpuHour = parsed.pricing.defaultPerGpuHour == null
    ? null
    : toBaseUnits('pricing.defaultPerGpuHour', parsed.pricing.defaultPerGpuHour)
  if (parsed.leases.minDurationSec > parsed.leases.maxDurationSec) {
    issues.push({ path: 'leases.minDurationSec', value: parsed.leases.minDurationSec, expected: `at most leases.maxDurationSec (${parsed.leases.maxDurationSec})` })
  }
  if (parsed.offers.republishSec >= parsed.offers.ttlSec) {
    issues.push({ path: 'offers.republishSec', value: parsed.offers.republishSec, expected: `less than offers.ttlSec (${parsed.offers.ttlSec}) so offers are renewed before they expire` })
  }
  if (parsed.settlement.mode === 'onchain' && (parsed.settlement.rpcUrl == null || parsed.settlement.escrowAddress == null)) {
    issues.push({ path: 'settlement.mode', value: 'onchain', expected: 'settlement.rpcUrl and settlement.escrowAddress to be set as well' })
  }
  if (parsed.settlement.mode === 'onchain' && parsed.pricing.token.toLowerCase() === ZERO_ADDRESS) {
    issues.push({ path: 'pricing.token', value: parsed.pricing.token, expected: 'the ERC-20 token the escrow holds (on-chain settlement cannot pay in the zero address)' })
  }
  const redeemAbove = parsed.settlement.autoRedeem.whenUnredeemedAbove
  const autoRedeem = {
    everyMinutes: parsed.settlement.autoRedeem.everyMinutes,
    whenUnredeemedAbove: redeemAbove == null ? null : toBaseUnits('settlement.autoRedeem.whenUnredeemedAbove', redeemAbove)
  }
  const simulate = parsed.probe.simulate.map((s, i) => ({ ...s, model: simulatedClass(`probe.simulate.${i}.model`, s.model, issues) }))
  if (issues.length > 0) throw new ConfigError(issues)
  return deepFreeze({
    ...parsed,
    probe: { ...parsed.probe, simulate },
    pricing: { ...parsed.pricing, perGpuHour, defaultPerGpuHour },
    settlement: { ...parsed.settlement, autoRedeem }
  }) as ProviderConfig
}

/**
 * The class a `probe.simulate` model names (`H100`, `A100 80GB`, what nvidia-smi prints, or a class
 * name), through config/gpu-classes.json; a model it cannot place is an issue listing the classes, not
 * GPUs of class `unknown` that no price would cover.
 */
function simulatedClass (path: string, model: string, issues: ConfigIssue[]): string {
  const table = defaultGpuClasses()
  const { spec, candidates } = table.resolveName(model)
  if (spec != null) return spec.class
  const expected = candidates.length > 1
    ? `one of the classes it could mean: ${candidates.map((c) => c.class).join(', ')}`
    : `a GPU class (${table.classes.map((c) => c.class).join(', ')}) or a model name as nvidia-smi or amd-smi prints it`
  issues.push({ path, value: model, expected })
  return model
}

function describeIssue (issue: z.core.$ZodIssue, merged: ConfigLayer): ConfigIssue {
  const path = issue.path.map(String).join('.')
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (path === '' ? k : `${path}.${k}`))
    return { path: keys.join(', '), value: undefined, expected: 'removed or spelled as one of the documented keys (this key is unknown)' }
  }
  let value: unknown = merged
  for (const segment of issue.path) {
    value = value != null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[segment as PropertyKey] : undefined
  }
  return { path, value, expected: expectationOf(issue) }
}

function expectationOf (issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type': return `a value of type ${issue.expected}`
    case 'invalid_value': return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
    case 'too_small': return `at least ${String(issue.minimum)}${issue.origin === 'array' ? ' entries' : ''}`
    case 'too_big': return `at most ${String(issue.maximum)}${issue.origin === 'array' ? ' entries' : ''}`
    case 'invalid_format':
      // zod words these as a rule ("must start with …"); the sentence around it already says "must be".
      if (issue.format === 'starts_with') return `text starting with ${JSON.stringify((issue as { prefix?: string }).prefix ?? '')}`
      return issue.message.replace(/^Invalid string: /i, '').replace(/^must (be )?/i, '')
    default: return issue.message
  }
}

function deepFreeze<T> (value: T): T {
  if (value != null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
