import { readFile } from 'node:fs/promises'
import YAML from 'yaml'
import { configKeys, type ConfigLayer } from './config.js'
import { ConfigError } from './errors.js'

/**
 * YAML reads `2.50` as a float. Prices are money, so decimals are kept as the text that was written
 * and converted to base units exactly; integers stay numbers.
 */
const decimalAsText = {
  tag: 'tag:yaml.org,2002:float',
  test: /^[-+]?(?:[0-9][0-9_]*)?\.[0-9]+$/,
  resolve: (text: string): string => text,
  default: true
}

/** Parses config.yaml text into a layer; a syntax error names the line. */
export function parseConfigYaml (text: string, source = 'config.yaml'): ConfigLayer {
  let value: unknown
  try {
    value = YAML.parse(text, { customTags: (tags) => [decimalAsText, ...tags], prettyErrors: true })
  } catch (err) {
    const line = (err as { linePos?: Array<{ line: number }> }).linePos?.[0]?.line
    throw new ConfigError([{ path: '(file)', value: undefined, expected: `valid YAML${line != null ? ` (error at line ${line})` : ''}`, source }], { cause: err })
  }
  if (value == null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError([{ path: '(file)', value: undefined, expected: 'a YAML mapping of keys to values', source }])
  }
  return value as ConfigLayer
}

/** Reads a config file; a missing file is an empty layer only when `optional`. */
export async function readConfigFile (path: string, options: { optional?: boolean } = {}): Promise<ConfigLayer> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && options.optional === true) return {}
    throw new ConfigError([{ path: '(file)', value: path, expected: `a readable file (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, source: path }], { cause: err })
  }
  return parseConfigYaml(text, path)
}

/** One line of explanation per key, written above it in the generated config.yaml and in the README. */
export const CONFIG_KEY_DOCS: Record<string, string> = {
  dataDir: 'Where keys, the ledger, job directories and provider.json live.',
  logLevel: 'trace, debug, info, warn, error, fatal or silent.',
  'network.listen': 'libp2p listen addresses.',
  'network.announce': 'Addresses to advertise instead of the listen addresses (e.g. behind NAT).',
  'network.bootstrap': 'Peers to dial at start (multiaddrs with /p2p/<peer id>), e.g. a matcher.',
  'network.mdns': 'Find peers on the local network with mDNS.',
  'network.dht': 'Join the gpumesh DHT (/gpumesh/kad/1.0.0) for peer routing.',
  'probe.nvidiaSmi': 'Path to nvidia-smi; null finds it on PATH. GPUMESH_NVIDIA_SMI wins.',
  'probe.amdSmi': 'Path to amd-smi; null finds it on PATH. GPUMESH_AMD_SMI wins.',
  'probe.rocmSmi': 'Path to rocm-smi; null finds it on PATH. GPUMESH_ROCM_SMI wins.',
  'probe.sysfsRoot': 'Where sysfs is mounted, for the AMD driver\'s process list (class/kfd/kfd/proc); null is /sys. GPUMESH_SYSFS_ROOT wins.',
  'probe.timeoutMs': 'A GPU tool that runs longer than this is killed and reported as hung.',
  'probe.intervalSec': 'How often GPUs are probed for health and capacity.',
  'probe.maxTemperatureC': 'A GPU at or above this temperature is unhealthy and not offered.',
  'probe.allowUnknownHealth': 'Offer GPUs whose temperature and ECC errors cannot be read (a failed amd-smi metric call, no sensor). Off: such GPUs are not offered.',
  'probe.simulate': 'Simulated GPUs for machines without any, e.g. [{ model: H100-SXM-80GB, count: 8 }]. Marked simulated everywhere.',
  'pricing.token': 'ERC-20 token prices are quoted and paid in (the zero address off-chain).',
  'pricing.tokenDecimals': 'Decimals of that token; prices below are in token units and stored in base units.',
  'pricing.chainId': 'Chain id in every signature (EIP-712 domain).',
  'pricing.defaultPerGpuHour': 'Price per GPU-hour for classes not listed below; null: do not offer them.',
  'pricing.perGpuHour': 'Price per GPU-hour by model class, e.g. { H100-SXM-80GB: "2.49" }.',
  'pricing.spotDiscountPercent': 'Percent taken off every price.',
  'pricing.surge.enabled': 'Raise prices when most GPUs are leased.',
  'pricing.surge.thresholdPercent': 'Share of GPUs leased above which the surge starts.',
  'pricing.surge.maxPercent': 'Surcharge when every GPU is leased, rising linearly from the threshold.',
  'leases.minDurationSec': 'Shortest lease accepted.',
  'leases.maxDurationSec': 'Longest lease accepted.',
  'leases.maxConcurrent': 'Most leases accepted or running at once (TOO_MANY_LEASES beyond).',
  'leases.startDeadlineSec': 'An accepted lease whose job has not started by then expires and frees its GPUs.',
  'leases.allowRenters': 'If not empty, only these renter addresses may lease.',
  'leases.denyRenters': 'Renter addresses never served (RENTER_BLOCKED).',
  'leases.trustedMatchers': 'If not empty, proposals only from these matcher peer ids (a renter proposing for itself is always heard).',
  'leases.proposalsPerMinutePerPeer': 'Proposals one peer may send per minute (RATE_LIMITED beyond).',
  'billing.intervalSec': 'Length of a usage period: a signed usage report is sent at the end of each.',
  'billing.paymentGraceSec': 'A job whose renter sends no voucher this long after a report is stopped (UNPAID).',
  'offers.republishSec': 'Offers are signed and gossiped again this often, at once when capacity changes, and within 5 s when a peer (a new matcher) subscribes.',
  'offers.ttlSec': 'Offers expire this long after publication; at most 86400 (receivers ignore offers that claim to live longer than a day).',
  'offers.region': 'A region label renters can filter on, e.g. eu-west.',
  'offers.fleetMembership': 'File with a fleet operator\'s signed membership for this node (gpumesh fleet sign), carried in offers so renters can ask for that operator; relative to the data directory; null: no fleet.',
  'runner.kind': 'none (accept no jobs), process (runs renters\' code on this host, as runner.process.user) or docker.',
  'runner.stopGraceSec': 'Time between SIGTERM and SIGKILL for a job to write a checkpoint.',
  'runner.maxBundleBytes': 'Largest job bundle accepted.',
  'runner.artifactRetentionSec': 'How long a finished job\'s artifacts are kept for download.',
  'runner.process.user': 'Account process-runner jobs run as (name, uid or uid:gid), not the daemon\'s: they cannot read its keys. Needs root.',
  'runner.process.jobsDir': 'With runner.process.user: where jobs live, outside the data directory; null for <dataDir>/jobs.',
  'runner.process.sameUser': 'Run process-runner jobs as the daemon\'s own user, able to read its keys and token: only for renters you trust with them.',
  'runner.docker.binary': 'The docker command.',
  'runner.docker.memory': 'Memory limit per job container (docker --memory), null for none.',
  'runner.docker.cpus': 'CPU limit per job container (docker --cpus), null for none.',
  'runner.docker.network': 'Container network: none (default), bridge or host.',
  'runner.docker.allowImages': 'If not empty, only these images may run: name, name:tag, name@sha256:… or a digest sha256:…; listed images that are absent are pulled. Empty: any image already on this host, never pulled.',
  'runner.docker.pullTimeoutSec': 'Longest pull of an allowed image before the job is refused (IMAGE_UNAVAILABLE); 0: never pull. Renters wait 120 s for a job to start.',
  'runner.docker.pullMaxBytes': 'Largest image (compressed layers) a pull may download; a larger one is refused (IMAGE_UNAVAILABLE).',
  'runner.docker.socket': 'The docker engine\'s API socket, used for pulls.',
  'settlement.mode': 'offchain (export verifiable batches) or onchain (redeem vouchers at the escrow contract).',
  'settlement.rpcUrl': 'JSON-RPC endpoint of the chain, for onchain.',
  'settlement.escrowAddress': 'Escrow contract address, for onchain.',
  'settlement.autoRedeem.everyMinutes': 'Onchain: redeem the newest vouchers every this many minutes (null: only by `gpumesh settle onchain`).',
  'settlement.autoRedeem.whenUnredeemedAbove': 'Onchain: also redeem as soon as this much (token units, "25.00") is vouchered and not yet redeemed.',
  'api.enabled': 'Serve the local HTTP API (status, metrics, dashboard).',
  'api.host': 'The API listens on loopback only.',
  'api.port': 'API port; 0 picks a free one (written to provider.json).'
}

/** A commented config.yaml with every key at its default, for `gpumesh init`. */
export function renderConfigTemplate (dataDir: string): string {
  const lines = [
    '# gpumesh provider configuration.',
    '# Every key is shown at its default. Environment variables GPUMESH_<KEY> (e.g. GPUMESH_API_PORT)',
    '# override this file, and command-line flags override both.',
    ''
  ]
  let section = ''
  let subsection = ''
  for (const { path, defaultValue } of configKeys()) {
    const segments = path.split('.')
    const top = segments.length > 1 ? segments[0] as string : ''
    if (top !== section) {
      if (top !== '') lines.push('', `${top}:`)
      section = top
      subsection = ''
    }
    // Nested sections (pricing.surge, runner.docker) get their heading once.
    const sub = segments.length === 3 ? segments[1] as string : ''
    if (sub !== subsection) {
      if (sub !== '') lines.push(`  ${sub}:`)
      subsection = sub
    }
    const value = path === 'dataDir' ? dataDir : defaultValue
    const indent = '  '.repeat(segments.length - 1)
    const doc = CONFIG_KEY_DOCS[path]
    if (doc != null) lines.push(`${indent}# ${doc}`)
    lines.push(`${indent}${segments[segments.length - 1] as string}: ${JSON.stringify(value)}`)
  }
  return lines.join('\n') + '\n'
}
