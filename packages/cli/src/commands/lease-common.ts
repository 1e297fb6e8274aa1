import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createNode, type GpumeshNode } from '@gpumesh/net'
import { formatAmount, marketDomain, settlementDomain, type JobEvent } from '@gpumesh/protocol'
import { ArchiveError, JobClientError, JobFileError, JobRunError, LeaseRecordError, LeaseStore, OrderError, applyOutcome, attachJob, attachStartedAt, readBook, recordFollower } from '@gpumesh/renter'
import type { BookRead, JobFollowResult, LocalLeaseRecord } from '@gpumesh/renter'
import { CliError, EXIT } from '../errors.js'
import { loadIdentity, type Identity } from '../identity.js'
import { obtainPassword } from '../prompt.js'
import { MATCHER_INFO_FILE } from '../data-dir.js'
import type { CommandContext } from '../context.js'

/** Shared by the `gpumesh lease …` commands: identity, node, records, and renter errors as sentences. */

/** Where a renter's lease records live inside the data directory. */
export function leaseStore (dataDir: string): LeaseStore {
  return new LeaseStore(join(dataDir, 'renter', 'leases'))
}

/**
 * Saves what a later attach (`lease status`, `lease logs`) learned — vouchers it signed, events, the
 * job's end — into the stored record without undoing a newer write by a `lease submit` still running.
 * Returns the record as saved.
 */
export async function saveAttachResult (store: LeaseStore, learned: LocalLeaseRecord, outcome: JobFollowResult | null): Promise<LocalLeaseRecord> {
  const current = await store.load(learned.leaseId).catch(() => learned)
  if (learned.paid > current.paid) {
    current.paid = learned.paid
    current.voucherSequence = learned.voucherSequence
  }
  current.lastSequence = Math.max(current.lastSequence, learned.lastSequence)
  current.billedMs = Math.max(current.billedMs, learned.billedMs)
  if (learned.gpuMilliseconds > current.gpuMilliseconds) current.gpuMilliseconds = learned.gpuMilliseconds
  if (outcome != null) applyOutcome(current, outcome)
  current.updatedAt = Date.now()
  await store.save(current)
  return current
}

/** Unlocks the renter's keys (GPUMESH_PASSWORD, else asked at a terminal). */
export async function renterIdentity (dataDir: string, ctx: CommandContext): Promise<Identity> {
  const password = await obtainPassword(ctx, { confirm: false, allowEmpty: true })
  return await loadIdentity(dataDir, password)
}

/**
 * A libp2p node with the renter's peer key: the order names this peer id, and the provider lets only it
 * start the job. It dials out only.
 */
export async function renterNode (identity: Identity): Promise<GpumeshNode> {
  return await createNode({ privateKey: identity.peerKey, listen: [], connectionMonitor: { enabled: false } })
}

/** What a command about one recorded lease starts with: the record store, the record and the renter's keys. */
export async function openLease (dataDir: string, leaseId: string, ctx: CommandContext): Promise<{ store: LeaseStore, record: LocalLeaseRecord, identity: Identity }> {
  const store = leaseStore(dataDir)
  const record = await store.load(leaseId)
  const identity = await renterIdentity(dataDir, ctx)
  return { store, record, identity }
}

/** Runs `use` with a renter node (see `renterNode`), which is stopped afterwards whatever happens. */
export async function withRenterNode<T> (identity: Identity, use: (node: GpumeshNode) => Promise<T>): Promise<T> {
  const node = await renterNode(identity)
  try {
    return await use(node)
  } finally {
    await node.stop()
  }
}

/**
 * Attaches to a recorded lease's job as its renter from event `fromSequence`, paying reports as a submit
 * would; the vouchers signed and the events seen are written into `record` (in memory; the caller saves).
 */
export async function attachRecordedLease (node: GpumeshNode, identity: Identity, record: LocalLeaseRecord, o: { signal: AbortSignal, fromSequence: number, onEvent: (e: JobEvent) => void }): Promise<JobFollowResult> {
  const follow = recordFollower(record)
  return await attachJob({
    node,
    wallet: identity.wallet,
    terms: record.terms,
    settlementDomain: settlementDomain(record.terms),
    marketDomain: marketDomain(record.terms.chainId),
    budget: record.budget,
    signal: o.signal,
    fromSequence: o.fromSequence,
    startedAt: attachStartedAt(record),
    onVoucher: follow.onVoucher,
    onEvent: (e) => {
      follow.onEvent(e)
      o.onEvent(e)
    }
  })
}

/** The running matcher's addresses from `<data dir>/matcher.json`, or null. */
export async function localMatcher (dataDir: string): Promise<string[] | null> {
  try {
    const info = JSON.parse(await readFile(join(dataDir, MATCHER_INFO_FILE), 'utf8')) as { addresses?: unknown }
    if (Array.isArray(info.addresses) && info.addresses.length > 0 && info.addresses.every((a) => typeof a === 'string')) return info.addresses
  } catch {
    // none here
  }
  return null
}

/**
 * Reads a matcher's whole book (no filter but whether simulated offers count) with a node of its own;
 * a failure is a CliError with the reader's code.
 */
export async function readWholeBook (ctx: CommandContext, matcher: string[], o: { includeSimulated: boolean, includeRecords?: boolean }): Promise<BookRead> {
  const node = await createNode({ listen: [], connectionMonitor: { enabled: false } })
  try {
    return await readBook({
      node,
      matcher,
      filters: { gpuClass: null, minGpus: null, minMemoryMiB: null, maxPricePerGpuHour: null, region: null, operator: null, includeSimulated: o.includeSimulated },
      includeRecords: o.includeRecords ?? false,
      signal: ctx.signal
    })
  } catch (err) {
    throw new CliError((err as { code?: string }).code ?? 'MATCHER_UNREACHABLE', (err as Error).message, { cause: err })
  } finally {
    await node.stop()
  }
}

/** Errors of the renter SDK as CliErrors whose message is the sentence to print. */
export function renterCliError (err: unknown, decimals = 6): unknown {
  if (err instanceof JobFileError) return new CliError('JOB_FILE_INVALID', `bad job file: ${err.message}`, { exitCode: EXIT.USAGE, cause: err })
  if (err instanceof ArchiveError) return new CliError(`BUNDLE_${err.code}`, `cannot build the job bundle: ${err.message}.`, { exitCode: EXIT.USAGE, cause: err })
  if (err instanceof OrderError) {
    if (err.code === 'NO_MATCH') return new CliError('NO_MATCH', `${err.message}. Nothing was leased or paid.`, { cause: err })
    if (err.code === 'ABORTED') return new CliError('INTERRUPTED', 'Stopped before a lease was granted; nothing was leased or paid.', { exitCode: 130, cause: err })
    return new CliError(err.code, err.message, { cause: err })
  }
  if (err instanceof JobRunError) {
    const where = err.lastCheckpoint != null ? `the last checkpoint the job reported: ${err.lastCheckpoint}` : 'the job reported no checkpoint'
    const later = err.code === 'PROVIDER_GONE' ? ` Once it is back, "gpumesh lease status ${err.leaseId} --wait" follows the job and "gpumesh lease fetch ${err.leaseId}" downloads its artifacts.` : ''
    return new CliError(err.code, `${err.message} Paid ${formatAmount(err.paid, decimals)} for lease ${err.leaseId}; ${where}.${later}`, { cause: err })
  }
  if (err instanceof JobClientError) {
    if (err.code === 'NOT_FINISHED') return new CliError(err.code, `The lease's job has not finished (${err.message}). Follow it with "gpumesh lease status <lease id> --wait", then fetch again.`, { cause: err })
    if (err.code === 'EXPIRED_ARTIFACTS') return new CliError(err.code, `The provider no longer keeps this lease's artifacts (${err.message}); they are gone.`, { cause: err })
    return new CliError(err.code, err.remote ? `The provider refused: ${err.message} (${err.code}).` : `Could not reach the provider: ${err.message}. Try again when it is back.`, { cause: err })
  }
  if (err instanceof LeaseRecordError) return new CliError(`LEASE_${err.code}`, err.message, { cause: err })
  return err
}

/** 1 h 02 min 03 s style. */
export function formatDuration (ms: number): string {
  const s = Math.round(ms / 1000)
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return `${h > 0 ? `${h} h ` : ''}${m} min ${String(s % 60).padStart(2, '0')} s`
}

/** An upload progress bar on stderr, redrawn at most every 100 ms. */
export function progressBar (ctx: CommandContext, label: string): { update: (sent: number, total: number) => void, done: () => void } {
  let last = 0
  let drawn = false
  const draw = (sent: number, total: number): void => {
    const fraction = total > 0 ? Math.min(1, sent / total) : 1
    const width = 30
    const filled = Math.round(fraction * width)
    ctx.stderr(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${mib(sent)}/${mib(total)} MiB`)
    drawn = true
  }
  return {
    update: (sent, total) => {
      const now = Date.now()
      if (sent < total && now - last < 100) return
      last = now
      draw(sent, total)
    },
    done: () => { if (drawn) ctx.stderr('\n'); drawn = false }
  }
}

function mib (bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1)
}
