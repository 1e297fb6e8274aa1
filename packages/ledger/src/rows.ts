import type { LeaseState } from './lease-state.js'
import { moneyFromText, optionalMoneyFromText } from './money.js'
import type {
  Address, Bytes32, GpuHealthState, GpuRecord, GpuState, GpuVendor, LeaseEventRecord, LeaseRecord,
  OfferRecord, RejectionRecord, SettlementKind, SettlementRecord, SettlementState, UsagePeriodRecord,
  UsageSampleRecord, VoucherRecord
} from './types.js'

/** Rows as SQLite returns them, and their mapping to records. Internal to the package. */

export interface GpuRow {
  uuid: string
  idx: number
  vendor: string
  name: string
  class: string
  memory_mib: number
  simulated: number
  first_seen: number
  last_seen: number
  state: string
  problems: string
  lease_id: string | null
  lease_state: string | null
}

export function gpuFromRow (row: GpuRow): GpuRecord {
  let state: GpuState = row.state as GpuHealthState
  if (row.lease_state === 'accepted') state = 'reserved'
  else if (row.lease_state === 'running') state = 'leased'
  return {
    uuid: row.uuid,
    index: row.idx,
    vendor: row.vendor as GpuVendor,
    name: row.name,
    class: row.class,
    memoryMiB: row.memory_mib,
    simulated: row.simulated === 1,
    state,
    problems: JSON.parse(row.problems) as string[],
    leaseId: row.lease_id,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen
  }
}

export interface OfferRow {
  sequence: number
  published_at: number
  expires_at: number
  body: string
  gpus_free: number
}

export function offerFromRow (row: OfferRow): OfferRecord {
  return { sequence: row.sequence, publishedAt: row.published_at, expiresAt: row.expires_at, body: row.body, gpusFree: row.gpus_free }
}

export interface LeaseRow {
  lease_id: string
  order_id: string
  renter: string
  renter_peer_id: string
  matcher_peer_id: string | null
  provider: string
  token: string
  chain_id: string
  price_per_gpu_hour: string
  gpu_class: string
  gpu_count: number
  duration_sec: number
  billing_interval_sec: number
  payment_grace_sec: number
  start_deadline: number
  job_hash: string
  terms: string | null
  escrow: string
  state: string
  state_reason: string
  created_at: number
  updated_at: number
  started_at: number | null
  ended_at: number | null
  job_pid: number | null
  job_pid_start_time: number | null
  job_dir: string | null
  exit_code: number | null
  gpus: string
}

export function leaseFromRow (row: LeaseRow): LeaseRecord {
  return {
    leaseId: row.lease_id as Bytes32,
    orderId: row.order_id as Bytes32,
    renter: row.renter as Address,
    renterPeerId: row.renter_peer_id,
    matcherPeerId: row.matcher_peer_id,
    provider: row.provider as Address,
    token: row.token as Address,
    chainId: moneyFromText(row.chain_id, 'chain_id'),
    pricePerGpuHour: moneyFromText(row.price_per_gpu_hour, 'price_per_gpu_hour'),
    gpuClass: row.gpu_class,
    gpuCount: row.gpu_count,
    durationSec: row.duration_sec,
    billingIntervalSec: row.billing_interval_sec,
    paymentGraceSec: row.payment_grace_sec,
    startDeadline: row.start_deadline,
    jobHash: row.job_hash as Bytes32,
    terms: row.terms,
    escrow: row.escrow as Address,
    gpus: JSON.parse(row.gpus) as string[],
    state: row.state as LeaseState,
    stateReason: row.state_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    jobPid: row.job_pid,
    jobPidStartTime: row.job_pid_start_time,
    jobDir: row.job_dir,
    exitCode: row.exit_code
  }
}

export interface LeaseEventRow {
  id: number
  lease_id: string
  at: number
  from_state: string | null
  to_state: string
  reason: string
  detail: string | null
}

export function leaseEventFromRow (row: LeaseEventRow): LeaseEventRecord {
  return {
    id: row.id,
    leaseId: row.lease_id,
    at: row.at,
    fromState: row.from_state as LeaseState | null,
    toState: row.to_state as LeaseState,
    reason: row.reason,
    detail: row.detail === null ? null : JSON.parse(row.detail) as Record<string, unknown>
  }
}

export interface RejectionRow {
  id: number
  at: number
  order_id: string | null
  renter: string | null
  matcher_peer_id: string | null
  code: string
  message: string
  proposal: string | null
}

export function rejectionFromRow (row: RejectionRow): RejectionRecord {
  return {
    id: row.id,
    at: row.at,
    orderId: row.order_id,
    renter: row.renter,
    matcherPeerId: row.matcher_peer_id,
    code: row.code,
    message: row.message,
    proposal: row.proposal
  }
}

export interface UsageSampleRow {
  id: number
  lease_id: string
  offset_ms: number
  at: number
  gpu_uuid: string
  utilization_percent: number | null
  memory_used_mib: number | null
  power_w: number | null
}

export function usageSampleFromRow (row: UsageSampleRow): UsageSampleRecord {
  return {
    id: row.id,
    leaseId: row.lease_id,
    offsetMs: row.offset_ms,
    at: row.at,
    gpuUuid: row.gpu_uuid,
    utilizationPercent: row.utilization_percent,
    memoryUsedMiB: row.memory_used_mib,
    powerW: row.power_w
  }
}

export interface UsagePeriodRow {
  lease_id: string
  period_index: number
  start_offset_ms: number
  end_offset_ms: number
  gpu_ms: string
  amount: string
  cumulative_amount: string
  avg_utilization_bp: number | null
  peak_memory_mib: number | null
  energy_mj: string | null
  final: number
  report: string
  created_at: number
}

export function usagePeriodFromRow (row: UsagePeriodRow): UsagePeriodRecord {
  return {
    leaseId: row.lease_id,
    periodIndex: row.period_index,
    startOffsetMs: row.start_offset_ms,
    endOffsetMs: row.end_offset_ms,
    gpuMs: moneyFromText(row.gpu_ms, 'gpu_ms'),
    amount: moneyFromText(row.amount, 'amount'),
    cumulativeAmount: moneyFromText(row.cumulative_amount, 'cumulative_amount'),
    avgUtilizationBp: row.avg_utilization_bp,
    peakMemoryMiB: row.peak_memory_mib,
    energyMj: optionalMoneyFromText(row.energy_mj, 'energy_mj'),
    final: row.final === 1,
    report: row.report,
    createdAt: row.created_at
  }
}

export interface VoucherRow {
  lease_id: string
  sequence: string
  cumulative_amount: string
  signature: string
  body: string
  received_at: number
}

export function voucherFromRow (row: VoucherRow): VoucherRecord {
  return {
    leaseId: row.lease_id,
    sequence: BigInt(row.sequence),
    cumulativeAmount: moneyFromText(row.cumulative_amount, 'cumulative_amount'),
    signature: row.signature,
    body: row.body,
    receivedAt: row.received_at
  }
}

export interface SettlementRow {
  id: number
  kind: string
  created_at: number
  updated_at: number
  lease_ids: string
  total: string
  tx_hash: string | null
  batch: string | null
  state: string
  error: string | null
  block_number: number | null
  gas_used: string | null
}

export function settlementFromRow (row: SettlementRow): SettlementRecord {
  return {
    id: row.id,
    kind: row.kind as SettlementKind,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    leaseIds: JSON.parse(row.lease_ids) as string[],
    total: moneyFromText(row.total, 'total'),
    txHash: row.tx_hash,
    batch: row.batch,
    state: row.state as SettlementState,
    error: row.error,
    blockNumber: row.block_number,
    gasUsed: optionalMoneyFromText(row.gas_used, 'gas_used')
  }
}
