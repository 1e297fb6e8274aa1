import { writeFile } from 'node:fs/promises'
import { isAbsolute, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { peerIdFromString } from '@libp2p/peer-id'
import { getAddress } from 'ethers'
import { marketDomain, signFleetMembership, validateFleetMembership, type FleetMembership } from '@gpumesh/protocol'
import { resolveDataDir } from '../data-dir.js'
import { CliError, EXIT } from '../errors.js'
import { loadIdentity } from '../identity.js'
import { obtainPassword } from '../prompt.js'
import type { Command } from '../context.js'

const DEFAULT_DAYS = 30
const MAX_DAYS = 366

export const fleetSignCommand: Command = {
  name: 'fleet sign',
  summary: 'As a fleet operator, vouch for one provider node: a signed membership file for its offers.',
  usage: 'fleet sign --peer-id PEER_ID --member ADDRESS [--days N] [--chain-id ID] [--out FILE] [--json] [--data-dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        'peer-id': { type: 'string' },
        member: { type: 'string' },
        days: { type: 'string', default: String(DEFAULT_DAYS) },
        'chain-id': { type: 'string', default: '31337' },
        out: { type: 'string' },
        json: { type: 'boolean', default: false },
        'data-dir': { type: 'string' }
      },
      strict: true
    })
    const usage = (message: string): CliError => new CliError('BAD_OPTION', message, { exitCode: EXIT.USAGE })
    const peerId = values['peer-id']
    if (peerId == null) throw usage('--peer-id is required: the provider node\'s peer id ("gpumesh provider status" or "gpumesh init" prints it).')
    try {
      peerIdFromString(peerId)
    } catch {
      throw usage(`--peer-id: "${peerId}" is not a libp2p peer id.`)
    }
    if (values.member == null) throw usage('--member is required: the provider\'s payment address.')
    let member: string
    try {
      member = getAddress(values.member)
    } catch {
      throw usage(`--member: "${values.member}" is not an Ethereum address.`)
    }
    const days = Number(values.days)
    if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) throw usage(`--days must be a whole number from 1 to ${MAX_DAYS}.`)
    if (!/^[1-9]\d{0,18}$/.test(values['chain-id'])) throw usage('--chain-id must be a positive whole number (the provider\'s pricing.chainId).')

    const dataDir = resolveDataDir(values['data-dir'], ctx)
    const password = await obtainPassword(ctx, { confirm: false, allowEmpty: true })
    const operator = await loadIdentity(dataDir, password)
    const fields = { operator: operator.address, member, peerId, expiresAt: Date.now() + days * 24 * 3600 * 1000 } as Omit<FleetMembership, 'proof'>
    const membership = validateFleetMembership({ ...fields, proof: signFleetMembership(fields, operator.wallet, marketDomain(BigInt(values['chain-id']))) })
    const text = JSON.stringify(membership, null, 2) + '\n'
    if (values.out != null) {
      const path = isAbsolute(values.out) ? values.out : resolve(ctx.cwd, values.out)
      await writeFile(path, text, { mode: 0o644 })
      if (!values.json) {
        ctx.stdout([
          `Signed a fleet membership for peer ${peerId} (payment address ${member}), operator ${operator.address}, until ${new Date(membership.expiresAt).toISOString()}.`,
          `Written to ${path}. On the provider, set offers.fleetMembership to that file in config.yaml and restart it.`,
          ''
        ].join('\n'))
        return EXIT.OK
      }
    }
    ctx.stdout(text)
    return EXIT.OK
  }
}
