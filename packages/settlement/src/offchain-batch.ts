/**
 * Off-chain settlement batches: a JSON file of the newest voucher of each lease, with everything a
 * third party needs to check what is owed without gpumesh's code — the EIP-712 types, each value's
 * domain, message and signature, the provider-signed lease terms and newest usage report, and what an
 * earlier batch already settled. Building is pure; verification uses ethers' standard
 * `verifyTypedData`, so a batch that verifies here verifies with any EIP-712 library.
 */
import { getAddress, verifyTypedData, type TypedDataField } from 'ethers'
import {
  EIP712_TYPES, ZERO_ADDRESS, cumulativeAmount, eip712Message, ethersDomain, marketDomain, settlementDomain, toWire
} from '@gpumesh/protocol'
import type { Address, Eip712Domain, LeaseTerms, PaymentSignature, SignedUsageReport, Voucher } from '@gpumesh/protocol'

export const BATCH_FORMAT = 'gpumesh-settlement-batch'
export const BATCH_VERSION = 1

/** Half the secp256k1 group order: signatures with a higher `s` are malleable and refused. */
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n

/** One signed value in standard EIP-712 form (bigints as decimal strings). */
export interface BatchSignedValue {
  domain: { name: string, version: string, chainId: string, verifyingContract: string }
  primaryType: 'Voucher' | 'LeaseTerms' | 'UsageReport'
  message: Record<string, unknown>
  /** 65 bytes r ‖ s ‖ v, 0x-hex, as wallets produce. */
  signature: string
  /** The address that signed it (the renter for a voucher, the provider otherwise). */
  signer: string
}

export interface BatchEntry {
  leaseId: string
  voucher: BatchSignedValue
  terms: BatchSignedValue
  /** The newest usage report the provider signed for the lease; null when none was kept. */
  usage: BatchSignedValue | null
  /** What an earlier batch of this provider already settled for the lease; null for none. */
  previous: { sequence: string, cumulativeAmount: string } | null
  /** The voucher's cumulative amount less `previous.cumulativeAmount`, in the token's base units. */
  amountDue: string
}

export interface BatchTotal {
  chainId: string
  token: string
  amountDue: string
  entries: number
}

export interface SettlementBatch {
  format: typeof BATCH_FORMAT
  version: typeof BATCH_VERSION
  provider: string
  createdAt: string
  types: Record<string, TypedDataField[]>
  entries: BatchEntry[]
  totals: BatchTotal[]
}

export interface BatchEntryInput {
  voucher: Voucher
  terms: { terms: LeaseTerms, signature: PaymentSignature }
  usage: SignedUsageReport | null
  previous: { sequence: bigint, cumulativeAmount: bigint } | null
}

const TYPES: Record<string, TypedDataField[]> = {
  EIP712Domain: [
    { name: 'name', type: 'string' }, { name: 'version', type: 'string' },
    { name: 'chainId', type: 'uint256' }, { name: 'verifyingContract', type: 'address' }
  ],
  Voucher: EIP712_TYPES.Voucher,
  LeaseTerms: EIP712_TYPES.LeaseTerms,
  UsageReport: EIP712_TYPES.UsageReport
}

function signedValue (primaryType: BatchSignedValue['primaryType'], domain: Eip712Domain, message: Record<string, unknown>, signature: PaymentSignature, signer: Address): BatchSignedValue {
  return {
    domain: toWire(ethersDomain(domain)) as BatchSignedValue['domain'],
    primaryType,
    message: toWire(message) as Record<string, unknown>,
    signature: signature.signature,
    signer
  }
}

/** The batch of `entries` (each already checked when its voucher was accepted), with totals per token. */
export function buildSettlementBatch (input: { provider: Address, createdAt: number, entries: BatchEntryInput[] }): SettlementBatch {
  const entries: BatchEntry[] = input.entries.map((e) => {
    const v = e.voucher
    const due = v.cumulativeAmount - (e.previous?.cumulativeAmount ?? 0n)
    return {
      leaseId: v.leaseId,
      voucher: signedValue('Voucher', { chainId: v.chainId, verifyingContract: v.verifyingContract }, eip712Message.Voucher(v), v.signature, v.renter),
      terms: signedValue('LeaseTerms', marketDomain(e.terms.terms.chainId), eip712Message.LeaseTerms(e.terms.terms), e.terms.signature, e.terms.terms.provider),
      usage: e.usage === null
        ? null
        : signedValue('UsageReport', marketDomain(e.terms.terms.chainId), eip712Message.UsageReport(e.usage.report), e.usage.signature, e.usage.report.provider),
      previous: e.previous === null ? null : { sequence: e.previous.sequence.toString(), cumulativeAmount: e.previous.cumulativeAmount.toString() },
      amountDue: due.toString()
    }
  })
  return {
    format: BATCH_FORMAT,
    version: BATCH_VERSION,
    provider: input.provider,
    createdAt: new Date(input.createdAt).toISOString(),
    types: TYPES,
    entries,
    totals: totalsOf(entries.map((e) => ({
      chainId: String(e.voucher.domain.chainId), token: String(e.voucher.message.token), amountDue: BigInt(e.amountDue)
    })))
  }
}

function totalsOf (rows: Array<{ chainId: string, token: string, amountDue: bigint }>): BatchTotal[] {
  const byKey = new Map<string, { chainId: string, token: string, amountDue: bigint, entries: number }>()
  for (const row of rows) {
    const key = `${row.chainId}:${row.token.toLowerCase()}`
    const total = byKey.get(key) ?? { chainId: row.chainId, token: row.token, amountDue: 0n, entries: 0 }
    total.amountDue += row.amountDue
    total.entries++
    byKey.set(key, total)
  }
  return [...byKey.values()].map((t) => ({ chainId: t.chainId, token: t.token, amountDue: t.amountDue.toString(), entries: t.entries }))
}

export interface EntryVerdict {
  index: number
  leaseId: string | null
  ok: boolean
  /** Sentences, one per problem found. */
  problems: string[]
  amountDue: bigint | null
}

export interface BatchVerification {
  ok: boolean
  /** Problems of the file as a whole (format, provider, totals). */
  problems: string[]
  entries: EntryVerdict[]
  /** Totals recomputed from the entries that verified. */
  totals: Array<{ chainId: string, token: string, amountDue: bigint, entries: number }>
}

const isObject = (v: unknown): v is Record<string, unknown> => v != null && typeof v === 'object' && !Array.isArray(v)
const same = (a: unknown, b: unknown): boolean => typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase()

/** Recovers the signer with ethers' standard EIP-712 code; refuses malleable (high-s) signatures. */
function recoverSigner (value: unknown, primaryType: BatchSignedValue['primaryType'], types: Record<string, TypedDataField[]>): string {
  if (!isObject(value) || !isObject(value.domain) || !isObject(value.message) || typeof value.signature !== 'string') {
    throw new Error('not a { domain, message, signature } object')
  }
  const typeFields = types[primaryType]
  if (typeFields === undefined) throw new Error(`the batch publishes no ${primaryType} type`)
  if (!/^0x[0-9a-fA-F]{130}$/.test(value.signature)) throw new Error('a signature that is not 65 bytes of hex')
  if (BigInt('0x' + value.signature.slice(66, 130)) > HALF_N) throw new Error('a high-s (malleable) signature')
  const signer = verifyTypedData(value.domain, { [primaryType]: typeFields }, value.message, value.signature)
  if (!same(signer, value.signer)) throw new Error(`signed by ${signer}, not by ${String(value.signer)}`)
  return signer
}

function bigintOf (value: unknown, what: string): bigint {
  if (typeof value !== 'string' || !/^\d{1,78}$/.test(value)) throw new Error(`${what} is not a decimal amount`)
  return BigInt(value)
}

/**
 * Checks every entry of a batch on its own — signatures against the published types, domains, the
 * lease terms it names, the billing rule behind the newest usage report, the sequence and amount
 * against what was settled before — and the totals. Never throws on bad input: every problem is a
 * sentence in the result.
 */
export function verifySettlementBatch (batch: unknown): BatchVerification {
  const problems: string[] = []
  if (!isObject(batch)) return { ok: false, problems: ['the file is not a JSON object'], entries: [], totals: [] }
  if (batch.format !== BATCH_FORMAT || batch.version !== BATCH_VERSION) {
    problems.push(`the file is not a ${BATCH_FORMAT} version ${BATCH_VERSION} batch`)
  }
  const types = isObject(batch.types) ? batch.types as Record<string, TypedDataField[]> : TYPES
  if (!isObject(batch.types)) problems.push('the batch publishes no EIP-712 types')
  const rawEntries = Array.isArray(batch.entries) ? batch.entries : []
  if (!Array.isArray(batch.entries)) problems.push('the batch has no entries list')
  const seen = new Set<string>()
  const entries = rawEntries.map((raw, index) => verifyEntry(raw, index, types, batch.provider, seen))
  const good = entries.filter((e) => e.ok)
  const totals = totalsOf(good.map((e) => {
    const raw = rawEntries[e.index] as BatchEntry
    return { chainId: String(raw.voucher.domain.chainId), token: String(raw.voucher.message.token), amountDue: e.amountDue ?? 0n }
  })).map((t) => ({ ...t, amountDue: BigInt(t.amountDue) }))
  const listed = Array.isArray(batch.totals) ? batch.totals as unknown[] : []
  for (const total of totals) {
    const claimed = listed.find((t) => isObject(t) && String(t.chainId) === total.chainId && same(t.token, total.token))
    if (!isObject(claimed)) {
      problems.push(`the totals list nothing for token ${total.token} on chain ${total.chainId}`)
    } else if (claimed.amountDue !== total.amountDue.toString() || claimed.entries !== total.entries) {
      problems.push(`the total for token ${total.token} on chain ${total.chainId} says ${String(claimed.amountDue)} over ${String(claimed.entries)} entries; the entries that verify add up to ${total.amountDue} over ${total.entries}`)
    }
  }
  if (listed.length > totals.length) problems.push('the totals name tokens no verified entry is in')
  return { ok: problems.length === 0 && entries.every((e) => e.ok), problems, entries, totals }
}

function verifyEntry (raw: unknown, index: number, types: Record<string, TypedDataField[]>, provider: unknown, seen: Set<string>): EntryVerdict {
  const problems: string[] = []
  const leaseId = isObject(raw) && typeof raw.leaseId === 'string' ? raw.leaseId : null
  const verdict = (amountDue: bigint | null): EntryVerdict => ({ index, leaseId, ok: problems.length === 0, problems, amountDue })
  if (!isObject(raw)) { problems.push('is not an object'); return verdict(null) }
  if (leaseId === null) problems.push('names no lease')
  else if (seen.has(leaseId.toLowerCase())) problems.push('repeats a lease already in this batch')
  else seen.add(leaseId.toLowerCase())

  const check = (what: string, fn: () => void): boolean => {
    try { fn(); return true } catch (err) { problems.push(`${what}: ${(err as Error).message}`); return false }
  }
  const voucher = raw.voucher as BatchSignedValue
  const terms = raw.terms as BatchSignedValue
  const voucherOk = check('the voucher', () => { recoverSigner(voucher, 'Voucher', types) })
  const termsOk = check('the lease terms', () => { recoverSigner(terms, 'LeaseTerms', types) })
  if (!voucherOk || !termsOk) return verdict(null)
  const v = voucher.message
  const t = terms.message

  check('the voucher', () => {
    if (!same(v.leaseId, leaseId)) throw new Error(`for lease ${String(v.leaseId)}`)
    if (!same(voucher.signer, v.renter)) throw new Error(`signed by ${voucher.signer}, not by its renter ${String(v.renter)}`)
    if (!same(v.provider, provider)) throw new Error(`pays ${String(v.provider)}, not the batch's provider ${String(provider)}`)
  })
  check('the lease terms', () => {
    if (!same(terms.signer, t.provider)) throw new Error(`signed by ${terms.signer}, not by their provider ${String(t.provider)}`)
    for (const field of ['leaseId', 'provider', 'renter', 'token'] as const) {
      if (!same(t[field], v[field])) throw new Error(`${field} ${String(t[field])}, but the voucher's is ${String(v[field])}`)
    }
    const market = toWire(ethersDomain(marketDomain(bigintOf(t.chainId, 'chainId')))) as Record<string, unknown>
    if (!same(terms.domain.verifyingContract, market.verifyingContract) || String(terms.domain.chainId) !== String(t.chainId)) {
      throw new Error('not signed under the market domain of their chain')
    }
    const expected = settlementDomain({ chainId: bigintOf(t.chainId, 'chainId'), escrow: getAddress(String(t.escrow ?? ZERO_ADDRESS)) as Address })
    if (String(voucher.domain.chainId) !== expected.chainId.toString() || !same(voucher.domain.verifyingContract, expected.verifyingContract)) {
      throw new Error(`settle on chain ${expected.chainId} through ${expected.verifyingContract}, but the voucher is signed for chain ${String(voucher.domain.chainId)} and contract ${String(voucher.domain.verifyingContract)}`)
    }
  })

  let cumulative: bigint | null = null
  check('the voucher', () => { cumulative = bigintOf(v.cumulativeAmount, 'its cumulative amount') })
  if (raw.usage != null) {
    const usage = raw.usage as BatchSignedValue
    check('the usage report', () => {
      recoverSigner(usage, 'UsageReport', types)
      const u = usage.message
      if (!same(usage.signer, t.provider)) throw new Error(`signed by ${usage.signer}, not by the lease's provider`)
      if (!same(u.leaseId, leaseId)) throw new Error(`for lease ${String(u.leaseId)}`)
      const gpus = Array.isArray(t.gpus) ? BigInt(t.gpus.length) : 0n
      const billed = cumulativeAmount(bigintOf(t.pricePerGpuHour, 'the price'), BigInt(String(u.endOffsetMs)) * gpus)
      const reported = bigintOf(u.cumulativeAmount, 'its cumulative amount')
      if (billed !== reported) throw new Error(`${reported} after ${String(u.endOffsetMs)} ms on ${gpus} GPU(s), but the billing rule gives ${billed}`)
      if (cumulative !== null && cumulative > reported) throw new Error(`totals ${reported}, less than the voucher's ${cumulative}`)
    })
  }

  const previous = raw.previous
  let due: bigint | null = null
  check('the amount due', () => {
    if (cumulative === null) throw new Error('cannot be computed')
    let before = 0n
    if (previous != null) {
      if (!isObject(previous)) throw new Error('the previous settlement is not an object')
      before = bigintOf(previous.cumulativeAmount, 'the previous cumulative amount')
      if (bigintOf(v.sequence, 'the voucher sequence') <= bigintOf(previous.sequence, 'the previous sequence')) {
        throw new Error(`voucher sequence ${String(v.sequence)} is not above the ${String(previous.sequence)} settled before`)
      }
      if (cumulative < before) throw new Error(`negative: the voucher's ${cumulative} is below the ${before} settled before`)
    }
    due = cumulative - before
    if (raw.amountDue !== due.toString()) throw new Error(`${String(raw.amountDue)} is listed, but the voucher less what was settled before is ${due}`)
  })
  return verdict(due)
}
