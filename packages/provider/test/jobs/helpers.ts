import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { Header } from 'tar'
import { openLedger, type Ledger } from '@gpumesh/ledger'
import { paymentKeyAddress, type Address, type Bytes32 } from '@gpumesh/protocol'

export const FIXTURES = fileURLToPath(new URL('../fixtures/jobs/', import.meta.url))
export const PROVIDER_KEY = '0x' + '11'.repeat(32)
export const RENTER_KEY = '0x' + '22'.repeat(32)
export const OTHER_KEY = '0x' + '33'.repeat(32)
export const PROVIDER = paymentKeyAddress(PROVIDER_KEY)
export const RENTER = paymentKeyAddress(RENTER_KEY)
export const TOKEN = '0x3333333333333333333333333333333333333333' as Address
export const CHAIN_ID = 31337n

export const hex32 = (s: string): Bytes32 => `0x${Buffer.from(s).toString('hex').padStart(64, '0').slice(-64)}`

export interface TestLedger {
  ledger: Ledger
  dir: string
  cleanup: () => void
}

export function tempDir (prefix = 'gpumesh-jobs-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function testLedger (now: () => number = () => Date.now()): TestLedger {
  const dir = tempDir()
  const ledger = openLedger(join(dir, 'ledger.db'), { clock: { now } })
  ledger.upsertGpus([0, 1, 2, 3].map((i) => ({
    uuid: `GPU-sim-${i}`, index: i, vendor: 'simulated' as const, name: 'Sim', class: 'SIM', memoryMiB: 80_000, simulated: true, state: 'free' as const, problems: []
  })))
  return { ledger, dir, cleanup: () => { ledger.close(); rmSync(dir, { recursive: true, force: true }) } }
}

export interface LeaseParams {
  name?: string
  gpuCount?: number
  pricePerGpuHour?: bigint
  durationSec?: number
  billingIntervalSec?: number
  paymentGraceSec?: number
  jobHash?: Bytes32
  running?: boolean
  /** The lease's escrow (vouchers are checked under it); default the zero address. */
  escrow?: Address
}

/** Reserves an accepted (or running) lease on simulated GPUs and returns its id. */
export function makeLease (ledger: Ledger, p: LeaseParams = {}): Bytes32 {
  const name = p.name ?? `lease-${Math.random()}`
  const leaseId = hex32(name)
  ledger.reserveLease({
    leaseId, orderId: hex32('order-' + name), orderExpiresAt: Date.now() + 3_600_000,
    renter: RENTER, renterPeerId: 'renter-peer', matcherPeerId: null, provider: PROVIDER, token: TOKEN,
    chainId: CHAIN_ID, ...(p.escrow != null ? { escrow: p.escrow } : {}), pricePerGpuHour: p.pricePerGpuHour ?? 3_600_000n, gpuClass: 'SIM', gpuCount: p.gpuCount ?? 2,
    durationSec: p.durationSec ?? 3600, billingIntervalSec: p.billingIntervalSec ?? 1, paymentGraceSec: p.paymentGraceSec ?? 1,
    startDeadline: Date.now() + 3_600_000, jobHash: p.jobHash ?? hex32('job'),
    eligibleGpuUuids: ['GPU-sim-0', 'GPU-sim-1', 'GPU-sim-2', 'GPU-sim-3']
  })
  if (p.running === true) ledger.transitionLease(leaseId, 'running', 'TEST')
  return leaseId
}

export interface RawEntry {
  path: string
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO'
  body?: string
  linkpath?: string
}

/** A tar.gz built block by block, so tests can write entries no honest archiver would. */
export function rawTarGz (entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = []
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '')
    const type = e.type ?? 'File'
    const header = new Header({
      path: e.path, type, size: type === 'File' ? body.length : 0, mode: type === 'Directory' ? 0o755 : 0o644,
      mtime: new Date(0), uid: 0, gid: 0, ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {})
    })
    const block = Buffer.alloc(512)
    header.encode(block, 0)
    blocks.push(block)
    if (type === 'File' && body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
    }
  }
  blocks.push(Buffer.alloc(1024))
  return gzipSync(Buffer.concat(blocks))
}

export async function * chunks (buf: Buffer, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size)
}
