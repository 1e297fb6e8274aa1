import { randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { jsonReplacer, validateLeaseTerms, validatePaymentSignature, type Bytes32 } from '@gpumesh/protocol'
import { LeaseRecordError } from './errors.js'
import { LOCAL_LEASE_STATES, type LocalLeaseRecord } from './lease-record.js'

/** A record file larger than this is not a record this code wrote. */
const MAX_RECORD_BYTES = 1024 * 1024

/** Runs one of the protocol's validators inside a schema, its error becoming the issue. */
const validated = <T>(validate: (input: unknown) => T): z.ZodType<T> => z.unknown().transform((value, ctx): T => {
  try {
    return validate(value)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message, input: value })
    return z.NEVER
  }
})

const baseUnits = z.string().regex(/^(0|[1-9][0-9]{0,77})$/, 'expected a decimal integer string').transform((v) => BigInt(v))
const count = z.int().nonnegative()

/**
 * A record file as `save` writes it (bigints as decimal strings, a `version`). Records written before
 * `startedAt` existed read as null there.
 */
const recordFileSchema = z.object({
  version: z.literal(1),
  leaseId: z.string().regex(/^0x[0-9a-f]{64}$/, 'expected 0x and 64 lowercase hex digits').transform((v) => v as Bytes32),
  createdAt: count,
  updatedAt: count,
  state: z.enum(LOCAL_LEASE_STATES),
  terms: validated(validateLeaseTerms),
  signature: validated(validatePaymentSignature),
  providerPeerId: z.string().min(1),
  providerAddresses: z.array(z.string()),
  via: z.enum(['matcher', 'provider']),
  jobFile: z.string().nullable(),
  tokenDecimals: z.int().min(0).max(77),
  budget: baseUnits,
  startedAt: count.nullable().optional().transform((v) => v ?? null),
  lastSequence: count,
  paid: baseUnits,
  voucherSequence: baseUnits,
  lastCheckpoint: z.string().nullable(),
  exitCode: z.int().nullable(),
  reason: z.string().nullable(),
  billedMs: count,
  gpuMilliseconds: baseUnits,
  artifactsDir: z.string().nullable()
})

/** Lease records in one directory, written atomically (temp file, then rename), mode 0600. */
export class LeaseStore {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  async save (record: LocalLeaseRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const path = join(this.dir, `${record.leaseId}.json`)
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
    await writeFile(tmp, JSON.stringify({ version: 1, ...record }, jsonReplacer, 2) + '\n', { mode: 0o600 })
    await rename(tmp, path)
  }

  /** Finds a record by its lease id or a unique prefix of it (`0x1f3a`). */
  async load (idOrPrefix: string): Promise<LocalLeaseRecord> {
    const wanted = idOrPrefix.toLowerCase()
    const names = await this.#names()
    const hits = names.filter((n) => n.toLowerCase().startsWith(wanted.startsWith('0x') ? wanted : `0x${wanted}`))
    if (hits.length === 0) throw new LeaseRecordError('NOT_FOUND', `No lease ${idOrPrefix} is recorded in ${this.dir}.`)
    if (hits.length > 1) throw new LeaseRecordError('AMBIGUOUS', `${hits.length} leases start with ${idOrPrefix}; give more of the id.`)
    return await this.#read(join(this.dir, hits[0] ?? ''))
  }

  /** Every readable record, oldest first; unreadable files are left out. */
  async list (): Promise<LocalLeaseRecord[]> {
    const names = await this.#names()
    const records = await Promise.all(names.map(async (n) => await this.#read(join(this.dir, n)).catch(() => null)))
    return records.filter((r): r is LocalLeaseRecord => r != null).sort((a, b) => a.createdAt - b.createdAt)
  }

  async #names (): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((n) => n.endsWith('.json'))
    } catch {
      return [] // no directory: no records
    }
  }

  async #read (path: string): Promise<LocalLeaseRecord> {
    try {
      if ((await stat(path)).size > MAX_RECORD_BYTES) throw new Error(`it is over ${MAX_RECORD_BYTES} bytes`)
      const parsed = recordFileSchema.safeParse(JSON.parse(await readFile(path, 'utf8')))
      if (!parsed.success) {
        const issue = parsed.error.issues[0]
        throw new Error(`${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'not a lease record'}`)
      }
      const { version: _version, ...record } = parsed.data
      return record
    } catch (err) {
      throw new LeaseRecordError('CORRUPT', `The lease record ${path} cannot be read: ${(err as Error).message}.`, { cause: err })
    }
  }
}
