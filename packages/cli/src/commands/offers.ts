import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createNode, type GpumeshNode } from '@gpumesh/net'
import { formatAmount, jsonReplacer, parseAmount } from '@gpumesh/protocol'
import { BookReadError, readBook as readMatcherBook } from '@gpumesh/renter'
import type { BookFilters, Offer } from '@gpumesh/protocol'
import { MATCHER_INFO_FILE, resolveDataDir } from '../data-dir.js'
import { addressOption } from '../chain.js'
import { CliError, EXIT } from '../errors.js'
import { renderTable } from '../table.js'
import type { Command } from '../context.js'

export const offersCommand: Command = {
  name: 'offers',
  summary: 'List the offers in a matcher\'s book, cheapest first, with signatures checked.',
  usage: 'offers [--matcher ADDR] [--json] [--class C] [--min-gpus N] [--max-price P] [--region R] [--operator 0x…] [--include-simulated] [--decimals D] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        matcher: { type: 'string' },
        json: { type: 'boolean', default: false },
        class: { type: 'string' },
        'min-gpus': { type: 'string' },
        'max-price': { type: 'string' },
        region: { type: 'string' },
        operator: { type: 'string' },
        'include-simulated': { type: 'boolean', default: false },
        decimals: { type: 'string', default: '6' },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const decimals = Number(values.decimals)
    if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) throw new CliError('BAD_OPTION', '--decimals must be an integer from 0 to 36.', { exitCode: EXIT.USAGE })
    const minGpus = values['min-gpus'] == null ? null : Number(values['min-gpus'])
    if (minGpus != null && (!Number.isInteger(minGpus) || minGpus < 1)) throw new CliError('BAD_OPTION', '--min-gpus must be a whole number of at least 1.', { exitCode: EXIT.USAGE })
    let maxPrice: bigint | null = null
    if (values['max-price'] != null) {
      try {
        maxPrice = parseAmount(values['max-price'], decimals)
      } catch (err) {
        throw new CliError('BAD_OPTION', `--max-price: ${(err as Error).message}.`, { exitCode: EXIT.USAGE, cause: err })
      }
      if (maxPrice === 0n) throw new CliError('BAD_OPTION', '--max-price must be above 0.', { exitCode: EXIT.USAGE })
    }
    const filters: BookFilters = {
      gpuClass: values.class ?? null,
      minGpus,
      minMemoryMiB: null,
      maxPricePerGpuHour: maxPrice,
      region: values.region ?? null,
      // Only the offers of one fleet operator's members (the matcher verified their memberships).
      operator: values.operator == null ? null : addressOption(values.operator, '--operator'),
      includeSimulated: values['include-simulated']
    }
    const addresses = values.matcher != null ? [values.matcher] : await runningMatcher(resolveDataDir(values['data-dir'], ctx))
    let targets
    try {
      targets = addresses.map((a) => multiaddr(a))
    } catch (err) {
      throw new CliError('BAD_OPTION', `--matcher: not a multiaddr (${(err as Error).message}).`, { exitCode: EXIT.USAGE, cause: err })
    }

    const node = await createNode({ listen: [], connectionMonitor: { enabled: false } })
    let offers: Offer[]
    let invalid: number
    let hiddenSimulated = 0
    try {
      ({ offers, invalid } = await readBook(node, targets, filters, ctx.signal))
      // An empty answer may only mean every offer is simulated: say so rather than "nothing".
      if (offers.length === 0 && !filters.includeSimulated && !values.json) {
        hiddenSimulated = (await readBook(node, targets, { ...filters, includeSimulated: true }, ctx.signal)).offers.length
      }
    } finally {
      await node.stop()
    }
    if (invalid > 0) ctx.stderr(`gpumesh: left out ${invalid} offer${invalid === 1 ? '' : 's'} whose signature did not verify.\n`)
    if (values.json) {
      // `simulated` is not part of the signed offer: true when any of its GPUs is simulated (each GPU says too).
      ctx.stdout(JSON.stringify(offers.map((o) => ({ ...o, simulated: o.gpus.some((g) => g.simulated) })), jsonReplacer, 2) + '\n')
    } else {
      ctx.stdout(renderOffers(offers, filters, decimals))
      if (hiddenSimulated > 0) {
        ctx.stdout(`${hiddenSimulated} offer${hiddenSimulated === 1 ? '' : 's'} of simulated GPUs ${hiddenSimulated === 1 ? 'is' : 'are'} hidden; add --include-simulated to list ${hiddenSimulated === 1 ? 'it' : 'them'}.\n`)
      }
    }
    return EXIT.OK
  }
}

/** Every page of a matcher's book for `filters`, each offer's signature checked (failures counted). */
async function readBook (node: GpumeshNode, targets: Multiaddr[], filters: BookFilters, signal: AbortSignal): Promise<{ offers: Offer[], invalid: number }> {
  try {
    const { offers, invalid } = await readMatcherBook({ node, matcher: targets, filters, signal })
    return { offers, invalid }
  } catch (err) {
    if (err instanceof BookReadError) throw new CliError('MATCHER_UNREACHABLE', (err as Error).message, { cause: err })
    throw err
  }
}

async function runningMatcher (dataDir: string): Promise<string[]> {
  const path = join(dataDir, MATCHER_INFO_FILE)
  try {
    const info = JSON.parse(await readFile(path, 'utf8')) as { addresses?: unknown }
    if (Array.isArray(info.addresses) && info.addresses.every((a) => typeof a === 'string') && info.addresses.length > 0) return info.addresses
  } catch {
    // fall through to the sentence below
  }
  throw new CliError('NO_MATCHER', `No matcher given and none found in ${path}. Pass --matcher /ip4/…/tcp/…/p2p/… or start one with "gpumesh matcher start".`, { exitCode: EXIT.USAGE })
}

function renderOffers (offers: Offer[], filters: BookFilters, decimals: number): string {
  if (offers.length === 0) return 'No offers match.\n'
  const header = ['PROVIDER', 'OPERATOR', 'CLASS', 'FREE/TOTAL', 'MEMORY', 'PRICE/GPU-H', 'REGION', 'LEASE', 'EXPIRES']
  const rows: string[][] = []
  for (const offer of offers) {
    for (const g of offer.gpus) {
      if (filters.gpuClass != null && g.class !== filters.gpuClass) continue
      if (filters.minGpus != null && g.countFree < filters.minGpus) continue
      if (filters.maxPricePerGpuHour != null && g.pricePerGpuHour > filters.maxPricePerGpuHour) continue
      if (g.simulated && !filters.includeSimulated) continue
      rows.push([
        `…${offer.peerId.slice(-10)}`,
        offer.fleet == null ? '-' : offer.fleet.operator,
        g.simulated ? `${g.class} (simulated)` : g.class,
        `${g.countFree}/${g.countTotal}`,
        `${Math.round(g.memoryMiB / 1024)} GiB`,
        formatAmount(g.pricePerGpuHour, decimals),
        offer.region ?? '-',
        `${offer.minLeaseSec}-${offer.maxLeaseSec} s`,
        new Date(offer.expiresAt).toISOString().slice(11, 19)
      ])
    }
  }
  const operators = new Set(offers.map((o) => o.fleet?.operator).filter((o) => o != null))
  const fleets = operators.size === 0 ? '' : `, from ${operators.size} fleet operator${operators.size === 1 ? '' : 's'}`
  return [renderTable(header, rows), '', `${offers.length} offer${offers.length === 1 ? '' : 's'}${fleets}.`].join('\n') + '\n'
}
