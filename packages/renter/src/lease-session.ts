import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Wallet } from 'ethers'
import type { GpumeshNode } from '@gpumesh/net'
import { marketDomain, settlementDomain, type Bytes32, type JobEvent, type JobSpec } from '@gpumesh/protocol'
import { extractArtifacts } from './bundle.js'
import { DEFAULT_REATTACH_FOR_MS, REATTACH_FIRST_DELAY_MS, REATTACH_MAX_DELAY_MS, RECORD_WRITE_INTERVAL_MS } from './constants.js'
import { JobRunError } from './errors.js'
import { JobClientError, attachJob, cancelJob, downloadArtifacts, submitJob, type JobFollowResult } from './job-client.js'
import { applyOutcome, attachStartedAt, recordFollower, type LocalLeaseRecord, type LocalLeaseState } from './lease-record.js'
import { jobRefusedMessage, providerGoneMessage } from './lease-session-text.js'
import type { LeaseStore } from './lease-store.js'
import type { GrantedLease } from './order-client.js'

/**
 * A renter's lease from upload to artifacts: upload and follow the job, re-attach when the stream
 * breaks, keep the local record (lease-record.ts, lease-store.ts) up to date, fetch the artifacts.
 */

/** What running a leased job came to, as `runLeasedJob` returns it. */
export interface JobRunSummary {
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
  record: LocalLeaseRecord
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

/** Codes of the job client that mean the provider refused the job, not that it went away. */
const REFUSALS: ReadonlySet<string> = new Set([
  'MALFORMED', 'NO_SUCH_LEASE', 'BAD_AUTH', 'NOT_RENTER', 'RUNNER_DISABLED', 'WRONG_STATE', 'TOO_LARGE',
  'HASH_MISMATCH', 'BAD_BUNDLE', 'BAD_SPEC', 'SPAWN_FAILED', 'IMAGE_UNAVAILABLE', 'SHUTTING_DOWN', 'BUDGET_SPENT'
])

/** The artifacts as they came back, or why they did not. */
type ArtifactsResult = Pick<JobRunSummary, 'artifactsDir' | 'artifacts' | 'artifactsError'>

const NO_ARTIFACTS: ArtifactsResult = { artifactsDir: null, artifacts: null, artifactsError: null }

/**
 * Uploads and runs the job on a granted lease, follows it to the end (re-attaching if the event stream
 * breaks), keeps the record up to date, and downloads and unpacks the artifacts. When `signal` aborts,
 * the lease is cancelled (a signed terminate) and the summary says what was paid. Throws JobRunError:
 * `JOB_REFUSED` (the provider would not take the job) or `PROVIDER_GONE` (what was paid and the last
 * checkpoint are in the error).
 */
export async function runLeasedJob (o: RunLeasedJobOptions): Promise<JobRunSummary> {
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
  let outcome: JobFollowResult | null = null
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
  for (let attempt = 1; outcome == null && !isAbort(failure, o.signal) && !isRefusal(failure) && (record.state as LocalLeaseState) === 'running'; attempt++) {
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
    const fields = { leaseId: terms.leaseId, paid: record.paid, lastCheckpoint: record.lastCheckpoint }
    if (isRefusal(failure)) {
      record.state = 'failed'
      record.reason = failure.code
      await persist(true)
      throw new JobRunError('JOB_REFUSED', jobRefusedMessage(failure.code), fields, { cause: failure })
    }
    record.state = 'provider-gone'
    await persist(true)
    throw new JobRunError('PROVIDER_GONE', providerGoneMessage(failure, record.lastSequence > 0 ? reattachFor : null), fields, { cause: failure })
  }

  applyOutcome(record, outcome)
  await persist(true)
  const artifacts = await fetchArtifacts(o, domain)
  if (artifacts.artifactsDir != null) {
    record.artifactsDir = artifacts.artifactsDir
    await persist(true)
  }
  return summarize(record, {
    state: outcome.state,
    exitCode: outcome.exitCode,
    reason: record.reason,
    runTimeMs: record.billedMs > 0 ? record.billedMs : startedAt != null ? (endedAt ?? now()) - startedAt : 0,
    paymentStopped: outcome.paymentStopped ?? null,
    ...artifacts
  })
}

/** Downloads the artifacts to `<outDir>/artifacts.tar.gz` and unpacks them there; a failure is reported, not thrown. */
async function fetchArtifacts (o: RunLeasedJobOptions, domain: ReturnType<typeof marketDomain>): Promise<ArtifactsResult> {
  try {
    await mkdir(o.outDir, { recursive: true })
    const archive = join(o.outDir, 'artifacts.tar.gz')
    const got = await downloadArtifacts({ node: o.node, wallet: o.wallet, terms: o.lease.terms, marketDomain: domain, destFile: archive, ...(o.signal != null ? { signal: o.signal } : {}) })
    const unpacked = await extractArtifacts(archive, o.outDir)
    return { artifactsDir: o.outDir, artifacts: { files: unpacked.files, bytes: got.bytes, archive, sha256: got.sha256 }, artifactsError: null }
  } catch (err) {
    return { ...NO_ARTIFACTS, artifactsError: (err as Error).message }
  }
}

async function cancelled (o: RunLeasedJobOptions, record: LocalLeaseRecord, persist: (force: boolean) => Promise<void>): Promise<JobRunSummary> {
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
  return summarize(record, { state: 'cancelled', exitCode: null, reason, runTimeMs: record.billedMs, paymentStopped: null, ...NO_ARTIFACTS })
}

/** The summary of a lease from its record and how it ended: the one place it is built. */
function summarize (record: LocalLeaseRecord, end: Pick<JobRunSummary, 'state' | 'exitCode' | 'reason' | 'runTimeMs' | 'paymentStopped'> & ArtifactsResult): JobRunSummary {
  return {
    leaseId: record.leaseId,
    provider: record.terms.provider,
    providerPeerId: record.providerPeerId,
    gpuClass: record.terms.gpuClass,
    gpus: record.terms.gpus,
    state: end.state,
    exitCode: end.exitCode,
    reason: end.reason,
    runTimeMs: end.runTimeMs,
    gpuSeconds: Number(record.gpuMilliseconds) / 1000,
    paid: record.paid,
    lastCheckpoint: record.lastCheckpoint,
    artifactsDir: end.artifactsDir,
    artifacts: end.artifacts,
    artifactsError: end.artifactsError,
    paymentStopped: end.paymentStopped
  }
}

function isAbort (err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted === true) return true
  // AbortError is a DOMException from the platform, matched by its name.
  const e = err as { name?: string, code?: string }
  return e?.name === 'AbortError' || e?.code === 'ABORTED'
}

function isRefusal (err: unknown): err is JobClientError {
  return err instanceof JobClientError && (err.remote || REFUSALS.has(err.code))
}

async function sleep (ms: number, signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}
