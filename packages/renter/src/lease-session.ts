import { randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Wallet } from 'ethers'
import type { GpumeshNode } from '@gpumesh/net'
import {
  jsonReplacer, marketDomain, settlementDomain, validateLeaseTerms, type Bytes32, type JobEvent, type JobSpec,
  type LeaseTerms, type PaymentSignature, type UsageReport
} from '@gpumesh/protocol'
import { extractArtifacts } from './bundle.js'
import { DEFAULT_REATTACH_FOR_MS, REATTACH_FIRST_DELAY_MS, REATTACH_MAX_DELAY_MS, RECORD_WRITE_INTERVAL_MS } from './constants.js'
import { JobRunError, LeaseRecordError } from './errors.js'
import { attachJob, cancelJob, downloadArtifacts, submitJob, type JobOutcome } from './job-client.js'
import type { GrantedLease } from './order-client.js'

/**
 * A renter's lease from upload to artifacts, and the small local record kept per lease so that
 * `status`, `logs` and `cancel` work later, from another process.
 */

/** States a local record can be in. The provider's own lease states are `running`, `completed`, … */
export type LeaseRecordState = 'leased' | 'uploading' | 'running' | 'completed' | 'failed' | 'terminated' | 'cancelled' | 'provider-gone'

export const FINAL_RECORD_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'terminated', 'cancelled', 'provider-gone'])

/** What the renter remembers of one lease (`<dir>/<lease id>.json`). Amounts are base units. */
export interface LeaseRecord {
  leaseId: Bytes32
  createdAt: number
  updatedAt: number
  state: LeaseRecordState
  terms: LeaseTerms
  signature: PaymentSignature
  providerPeerId: string
  providerAddresses: string[]
  via: 'matcher' | 'provider'
  /** The job file the lease was made for, when there was one. */
  jobFile: string | null
  tokenDecimals: number
  budget: bigint
  /** When this renter saw the job start, on its own clock; re-attaching bounds what it pays by it. */
  startedAt: number | null
  /** Highest job event sequence seen. */
  lastSequence: number
  /** Cumulative amount of the newest voucher signed. */
  paid: bigint
  voucherSequence: bigint
  /** The note of the last `checkpoint` event. */
  lastCheckpoint: string | null
  exitCode: number | null
  /** The provider's reason when the job was terminated (UNPAID, RENTER_CANCEL, MAX_RUNTIME, …). */
  reason: string | null
  /** Billed time so far (end of the last usage period, ms) and GPU time (ms). */
  billedMs: number
  gpuMilliseconds: bigint
  artifactsDir: string | null
}

/** Lease records in one directory, written atomically (temp file, then rename), mode 0600. */
export class LeaseStore {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  async save (record: LeaseRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const path = join(this.dir, `${record.leaseId}.json`)
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
    await writeFile(tmp, JSON.stringify({ version: 1, ...record }, jsonReplacer, 2) + '\n', { mode: 0o600 })
    await rename(tmp, path)
  }

  /** Finds a record by its lease id or a unique prefix of it (`0x1f3a`). */
  async load (idOrPrefix: string): Promise<LeaseRecord> {
    const wanted = idOrPrefix.toLowerCase()
    let names: string[] = []
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.json'))
    } catch {
      // no directory: no records
    }
    const hits = names.filter((n) => n.toLowerCase().startsWith(wanted.startsWith('0x') ? wanted : `0x${wanted}`))
    if (hits.length === 0) throw new LeaseRecordError('NOT_FOUND', `No lease ${idOrPrefix} is recorded in ${this.dir}.`)
    if (hits.length > 1) throw new LeaseRecordError('AMBIGUOUS', `${hits.length} leases start with ${idOrPrefix}; give more of the id.`)
    return await this.read(join(this.dir, hits[0] ?? ''))
  }

  async list (): Promise<LeaseRecord[]> {
    let names: string[] = []
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.json'))
    } catch {
      return []
    }
    const records = await Promise.all(names.map(async (n) => await this.read(join(this.dir, n)).catch(() => null)))
    return records.filter((r): r is LeaseRecord => r != null).sort((a, b) => a.createdAt - b.createdAt)
  }

  private async read (path: string): Promise<LeaseRecord> {
    try {
      const raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown> & { terms: unknown }
      return {
        ...(raw as unknown as LeaseRecord),
        startedAt: typeof raw.startedAt === 'number' ? raw.startedAt : null,
        terms: validateLeaseTerms(raw.terms),
        budget: BigInt(raw.budget as string),
        paid: BigInt(raw.paid as string),
        voucherSequence: BigInt(raw.voucherSequence as string),
        gpuMilliseconds: BigInt(raw.gpuMilliseconds as string)
      }
    } catch (err) {
      throw new LeaseRecordError('CORRUPT', `The lease record ${path} cannot be read: ${(err as Error).message}.`, { cause: err })
    }
  }
}

/** A fresh record for a lease just granted. */
export function newLeaseRecord (lease: GrantedLease, fields: { jobFile: string | null, tokenDecimals: number, budget: bigint, now: number }): LeaseRecord {
  return {
    leaseId: lease.terms.leaseId,
    createdAt: fields.now,
    updatedAt: fields.now,
    state: 'leased',
    terms: lease.terms,
    signature: lease.signature,
    providerPeerId: lease.providerPeerId,
    providerAddresses: lease.providerAddresses,
    via: lease.via,
    jobFile: fields.jobFile,
    tokenDecimals: fields.tokenDecimals,
    budget: fields.budget,
    startedAt: null,
    lastSequence: 0,
    paid: 0n,
    voucherSequence: 0n,
    lastCheckpoint: null,
    exitCode: null,
    reason: null,
    billedMs: 0,
    gpuMilliseconds: 0n,
    artifactsDir: null
  }
}

/** Codes of the job client that mean the provider refused the job, not that it went away. */
const REFUSALS: ReadonlySet<string> = new Set([
  'MALFORMED', 'NO_SUCH_LEASE', 'BAD_AUTH', 'NOT_RENTER', 'RUNNER_DISABLED', 'WRONG_STATE', 'TOO_LARGE',
  'HASH_MISMATCH', 'BAD_BUNDLE', 'BAD_SPEC', 'SPAWN_FAILED', 'IMAGE_UNAVAILABLE', 'SHUTTING_DOWN', 'BUDGET_SPENT'
])

/** A job reply code, in words. */
export function describeJobRefusal (code: string): string {
  switch (code) {
    case 'NO_SUCH_LEASE': return 'the provider does not know this lease (expired before the job started?)'
    case 'BAD_AUTH': case 'NOT_RENTER': return 'the provider did not accept this renter\'s proof for the lease'
    case 'RUNNER_DISABLED': return 'the provider does not run jobs (runner.kind is none)'
    case 'WRONG_STATE': return 'the lease is not in a state that allows this (already started or ended)'
    case 'TOO_LARGE': return 'the bundle is larger than the provider accepts'
    case 'HASH_MISMATCH': return 'the bundle received does not hash to the order\'s jobHash'
    case 'BAD_BUNDLE': return 'the provider could not unpack the bundle'
    case 'BAD_SPEC': return 'the provider refused the command, image or environment'
    case 'SPAWN_FAILED': return 'the provider could not start the command'
    case 'IMAGE_UNAVAILABLE': return 'the provider does not have (or will not pull) the job\'s image; nothing was billed'
    case 'NOT_FINISHED': return 'the job has not finished yet'
    case 'EXPIRED_ARTIFACTS': return 'the provider no longer keeps this job\'s artifacts'
    case 'SHUTTING_DOWN': return 'the provider is shutting down'
    case 'BUDGET_SPENT': return 'the budget is spent'
    default: return `the provider answered ${code}`
  }
}

export interface LeaseSummary {
  leaseId: Bytes32
  provider: string
  providerPeerId: string
  gpuClass: string
  gpus: string[]
  /** Final state: completed, failed, terminated, cancelled. */
  state: string
  exitCode: number | null
  reason: string | null
  /** Billed run time in ms (end of the last usage period), else the renter's own clock. */
  runTimeMs: number
  gpuSeconds: number
  paid: bigint
  lastCheckpoint: string | null
  artifactsDir: string | null
  artifacts: { files: number, bytes: number, archive: string, sha256: string } | null
  /** Why the artifacts did not come back, when they did not. */
  artifactsError: string | null
  /** Set when the renter stopped paying: BUDGET_SPENT, or a report that failed its checks (AHEAD_OF_CLOCK, …). */
  paymentStopped: { code: string, message: string } | null
}

export interface RunLeasedJobOptions {
  /** The node whose peer id is the lease's renterPeerId. */
  node: GpumeshNode
  wallet: Wallet
  lease: GrantedLease
  spec: JobSpec
  bundle: { data: AsyncIterable<Uint8Array> | Uint8Array, size: number }
  budget: bigint
  /** Where the record lives and how it starts (see newLeaseRecord). */
  store: LeaseStore
  record: LeaseRecord
  /** Artifacts are downloaded to `<outDir>/artifacts.tar.gz` and unpacked there. */
  outDir: string
  signal?: AbortSignal
  onEvent?: (e: JobEvent) => void
  onUploadProgress?: (sentBytes: number, totalBytes: number) => void
  /** How long to keep re-attaching after the provider stops answering mid-job; default 120 s. */
  reattachForMs?: number
  /** Called before each re-attach attempt: which one, the wait before it, the time left, and why. */
  onReattach?: (attempt: ReattachAttempt) => void
  now?: () => number
}

export interface ReattachAttempt {
  attempt: number
  waitMs: number
  leftMs: number
  reason: string
}

/**
 * Uploads and runs the job on a granted lease, follows it to the end (re-attaching if the event stream
 * breaks), keeps the record up to date, and downloads and unpacks the artifacts. When `signal` aborts,
 * the lease is cancelled (a signed terminate) and the summary says what was paid. Throws JobRunError:
 * `JOB_REFUSED` (the provider would not take the job) or `PROVIDER_GONE` (what was paid and the last
 * checkpoint are in the error).
 */
export async function runLeasedJob (o: RunLeasedJobOptions): Promise<LeaseSummary> {
  const now = o.now ?? Date.now
  const { terms } = o.lease
  const domain = marketDomain(terms.chainId)
  const record = o.record
  let lastWrite = 0
  let startedAt: number | null = null
  let endedAt: number | null = null
  const persist = async (force: boolean): Promise<void> => {
    if (!force && now() - lastWrite < RECORD_WRITE_INTERVAL_MS) return
    lastWrite = now()
    record.updatedAt = lastWrite
    await o.store.save(record)
  }
  let saving: Promise<void> = Promise.resolve()
  const persistSoon = (): void => { saving = saving.then(async () => { await persist(false) }).catch(() => {}) }

  const follow = recordFollower(record)
  const onEvent = (e: JobEvent): void => {
    follow.onEvent(e)
    if (e.kind === 'started') { record.state = 'running'; startedAt ??= now(); record.startedAt ??= startedAt }
    if (e.kind === 'checkpoint') record.lastCheckpoint = e.text ?? `checkpoint at event ${e.sequence}`
    if (e.kind === 'exit') { record.exitCode = e.exitCode ?? null; endedAt = now() }
    if (e.kind === 'terminated') { record.reason = e.reason ?? null; endedAt = now() }
    persistSoon()
    o.onEvent?.(e)
  }
  const common = {
    node: o.node,
    wallet: o.wallet,
    terms,
    settlementDomain: settlementDomain(terms),
    marketDomain: domain,
    budget: o.budget,
    ...(o.signal != null ? { signal: o.signal } : {}),
    onEvent,
    onVoucher: (v: { cumulativeAmount: bigint, sequence: bigint }) => {
      follow.onVoucher(v)
      persistSoon()
    }
  }

  record.state = 'uploading'
  await persist(true)
  let outcome: JobOutcome | null = null
  let failure: unknown = null
  try {
    outcome = await submitJob({
      ...common,
      spec: o.spec,
      bundle: o.bundle.data,
      bundleSize: o.bundle.size,
      ...(o.onUploadProgress != null ? { onUploadProgress: o.onUploadProgress } : {})
    })
  } catch (err) {
    failure = err
  }
  // A stream that broke mid-job is re-attached from the last event seen, with a growing wait, for up to
  // reattachForMs (a restarting provider is back in seconds) before the provider is called gone.
  const reattachFor = o.reattachForMs ?? DEFAULT_REATTACH_FOR_MS
  const deadline = now() + reattachFor
  let delay = REATTACH_FIRST_DELAY_MS
  for (let attempt = 1; outcome == null && !isAbort(failure, o.signal) && !isRefusal(failure) && (record.state as LeaseRecordState) === 'running'; attempt++) {
    const leftMs = deadline - now()
    if (leftMs <= 0) break
    const waitMs = Math.min(delay, leftMs)
    o.onReattach?.({ attempt, waitMs, leftMs, reason: (failure as Error)?.message ?? String(failure) })
    await sleep(waitMs, o.signal)
    delay = Math.min(delay * 2, REATTACH_MAX_DELAY_MS)
    if (o.signal?.aborted === true) break
    try {
      outcome = await attachJob({ ...common, fromSequence: record.lastSequence, startedAt: attachStartedAt(record) })
    } catch (err) {
      failure = err
    }
  }
  await saving

  if (outcome == null) {
    if (isAbort(failure, o.signal)) return await cancelled(o, record, persist)
    if (isRefusal(failure)) {
      const code = (failure as { code: string }).code
      record.state = 'failed'
      record.reason = code
      await persist(true)
      throw new JobRunError('JOB_REFUSED', `The provider refused the job: ${describeJobRefusal(code)} (${code}).`, { leaseId: terms.leaseId, paid: record.paid, lastCheckpoint: record.lastCheckpoint }, { cause: failure })
    }
    record.state = 'provider-gone'
    await persist(true)
    const tried = record.lastSequence > 0 ? `, and re-attaching failed for ${Math.round(reattachFor / 1000)} s` : ''
    throw new JobRunError('PROVIDER_GONE', `The provider stopped answering${record.lastSequence > 0 ? ' mid-job' : ''} (${(failure as Error)?.message ?? String(failure)})${tried}.`, { leaseId: terms.leaseId, paid: record.paid, lastCheckpoint: record.lastCheckpoint }, { cause: failure })
  }

  applyOutcome(record, outcome)
  await persist(true)

  const summary: LeaseSummary = {
    leaseId: terms.leaseId,
    provider: terms.provider,
    providerPeerId: o.lease.providerPeerId,
    gpuClass: terms.gpuClass,
    gpus: terms.gpus,
    state: outcome.state,
    exitCode: outcome.exitCode,
    reason: record.reason,
    runTimeMs: record.billedMs > 0 ? record.billedMs : startedAt != null ? (endedAt ?? now()) - startedAt : 0,
    gpuSeconds: Number(record.gpuMilliseconds) / 1000,
    paid: record.paid,
    lastCheckpoint: record.lastCheckpoint,
    artifactsDir: null,
    artifacts: null,
    artifactsError: null,
    paymentStopped: outcome.paymentStopped ?? null
  }
  try {
    await mkdir(o.outDir, { recursive: true })
    const archive = join(o.outDir, 'artifacts.tar.gz')
    const got = await downloadArtifacts({ node: o.node, wallet: o.wallet, terms, marketDomain: domain, destFile: archive, ...(o.signal != null ? { signal: o.signal } : {}) })
    const unpacked = await extractArtifacts(archive, o.outDir)
    summary.artifacts = { files: unpacked.files, bytes: got.bytes, archive, sha256: got.sha256 }
    summary.artifactsDir = o.outDir
    record.artifactsDir = o.outDir
    await persist(true)
  } catch (err) {
    summary.artifactsError = (err as Error).message
  }
  return summary
}

async function cancelled (o: RunLeasedJobOptions, record: LeaseRecord, persist: (force: boolean) => Promise<void>): Promise<LeaseSummary> {
  const domain = marketDomain(o.lease.terms.chainId)
  let reason: string | null = 'RENTER_CANCEL'
  try {
    await cancelJob({ node: o.node, wallet: o.wallet, terms: o.lease.terms, marketDomain: domain, signal: AbortSignal.timeout(10_000), reason: 'RENTER_CANCEL' })
  } catch (err) {
    reason = `cancel not confirmed by the provider: ${(err as Error).message}`
  }
  record.state = 'cancelled'
  record.reason = 'RENTER_CANCEL'
  await persist(true)
  return {
    leaseId: record.leaseId,
    provider: record.terms.provider,
    providerPeerId: record.providerPeerId,
    gpuClass: record.terms.gpuClass,
    gpus: record.terms.gpus,
    state: 'cancelled',
    exitCode: null,
    reason,
    runTimeMs: record.billedMs,
    gpuSeconds: Number(record.gpuMilliseconds) / 1000,
    paid: record.paid,
    lastCheckpoint: record.lastCheckpoint,
    artifactsDir: null,
    artifacts: null,
    artifactsError: null,
    paymentStopped: null
  }
}

/**
 * Folds what following the job to its end learned into the record: the newest voucher, the last
 * event, the exit and the final state. Used by the session and by later attaches (status, logs).
 */
export function applyOutcome (record: LeaseRecord, outcome: JobOutcome): void {
  if (outcome.paid > record.paid) record.paid = outcome.paid
  record.lastSequence = Math.max(record.lastSequence, outcome.lastSequence)
  record.exitCode = outcome.exitCode
  record.reason = outcome.reason ?? record.reason
  record.state = toRecordState(outcome.state)
}

/**
 * What following a job tells its record, the same for the session and for a later attach (`lease
 * status`, `lease logs`): the last event seen, the billed and GPU time of usage reports, the newest
 * voucher signed.
 */
export function recordFollower (record: LeaseRecord): {
  onEvent: (e: JobEvent) => void
  onVoucher: (v: { cumulativeAmount: bigint, sequence: bigint }) => void
} {
  return {
    onEvent: (e) => {
      record.lastSequence = Math.max(record.lastSequence, e.sequence)
      if (e.kind === 'usage' && e.report != null) recordUsage(record, e.report.report)
    },
    onVoucher: (v) => {
      record.paid = v.cumulativeAmount
      record.voucherSequence = v.sequence
    }
  }
}

/**
 * Folds a usage report into the record: periods tile the lease from offset 0, so the billed time is
 * the newest report's end and the GPU time that end × the leased GPUs (the same report seen twice, on a
 * replay, changes nothing).
 */
export function recordUsage (record: LeaseRecord, report: UsageReport): void {
  record.billedMs = Math.max(record.billedMs, report.endOffsetMs)
  const gpuMs = BigInt(report.endOffsetMs) * BigInt(record.terms.gpus.length)
  if (gpuMs > record.gpuMilliseconds) record.gpuMilliseconds = gpuMs
}

/**
 * The start time to measure reports against when attaching again: when this renter saw the job
 * start, else when it was granted the lease (the job cannot have started before). Never the
 * provider's own claim, which a dishonest provider could move back to bill more.
 */
export function attachStartedAt (record: LeaseRecord): number {
  return record.startedAt ?? record.createdAt
}

function toRecordState (state: string): LeaseRecordState {
  return state === 'completed' || state === 'failed' || state === 'terminated' ? state : 'failed'
}

function isAbort (err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted === true) return true
  const e = err as { name?: string, code?: string }
  return e?.name === 'AbortError' || e?.code === 'ABORTED'
}

function isRefusal (err: unknown): boolean {
  const e = err as { name?: string, code?: string, remote?: boolean }
  return e?.name === 'JobClientError' && e.code != null && (e.remote === true || REFUSALS.has(e.code))
}

async function sleep (ms: number, signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}
