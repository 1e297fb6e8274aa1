import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Address, Hex, LeaseTerms } from '@gpumesh/protocol'
import { newLeaseRecord, type LocalLeaseRecord } from '../src/lease-record.js'
import { LeaseStore } from '../src/lease-store.js'

const PEER = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'
const ADDRESS = '0x00000000000000000000000000000000000000AA' as Address

function terms (leaseId: string): LeaseTerms {
  return {
    leaseId: leaseId as LeaseTerms['leaseId'], orderId: `0x${'cd'.repeat(32)}`, provider: ADDRESS, providerPeerId: PEER, renter: ADDRESS,
    renterPeerId: PEER, token: ADDRESS, chainId: 31337n, escrow: ADDRESS, pricePerGpuHour: 3_600_000n, gpus: ['GPU-a', 'GPU-b'],
    gpuClass: 'H100-SXM-80GB', durationSec: 3600, billingIntervalSec: 60, paymentGraceSec: 60, startDeadline: 1_800_000_000_000,
    jobHash: `0x${'ef'.repeat(32)}`, providerAddresses: [], acceptedAt: 1_700_000_000_000
  }
}

function record (leaseId: string): LocalLeaseRecord {
  const r = newLeaseRecord({
    terms: terms(leaseId),
    signature: { publicKey: `0x02${'11'.repeat(32)}` as Hex, signature: `0x${'22'.repeat(65)}` as Hex },
    providerPeerId: PEER,
    providerAddresses: ['/ip4/127.0.0.1/tcp/4001'],
    via: 'matcher'
  }, { jobFile: '/jobs/train.yaml', tokenDecimals: 6, budget: 10n ** 30n, now: 1_700_000_000_000 })
  r.paid = 123_456_789_012_345_678_901n
  r.voucherSequence = 7n
  r.gpuMilliseconds = 9_000n
  r.startedAt = 1_700_000_001_000
  return r
}

describe('lease store', () => {
  let dir: string
  let store: LeaseStore
  const a = `0x1f3a${'00'.repeat(30)}`
  const b = `0x1f3b${'00'.repeat(30)}`

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gpumesh-lease-store-'))
    store = new LeaseStore(dir)
    await store.save(record(a))
    await store.save(record(b))
  })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('reads back what it wrote, bigints and terms included, by id or unique prefix', async () => {
    expect(await store.load(a)).toEqual(record(a))
    expect((await store.load('1F3B')).leaseId).toBe(b)
  })

  it('says which lease is missing and when a prefix is ambiguous', async () => {
    await expect(store.load('0x99')).rejects.toMatchObject({ name: 'LeaseRecordError', code: 'NOT_FOUND' })
    await expect(store.load('0x1f3')).rejects.toMatchObject({ name: 'LeaseRecordError', code: 'AMBIGUOUS' })
  })

  it('refuses a record whose fields fail the schema, naming the key', async () => {
    const bad = `0x2${'0'.repeat(63)}`
    const file = join(dir, `${bad}.json`)
    const good = JSON.parse(await readFile(join(dir, `${a}.json`), 'utf8')) as Record<string, unknown>
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...good, leaseId: bad, paid: '12.5' }, /paid: expected a decimal integer string/],
      [{ ...good, leaseId: bad, state: 'exploded' }, /state:/],
      [{ ...good, leaseId: bad, terms: { ...(good.terms as object), pricePerGpuHour: '-1' } }, /terms:/],
      [{ ...good, leaseId: bad, version: 2 }, /version:/]
    ]
    for (const [content, message] of cases) {
      await writeFile(file, JSON.stringify(content))
      const err = await store.load(bad).catch((e: unknown) => e)
      expect(err).toMatchObject({ name: 'LeaseRecordError', code: 'CORRUPT' })
      expect((err as Error).message).toMatch(message)
    }
    await writeFile(file, '{ not json')
    await expect(store.load(bad)).rejects.toMatchObject({ code: 'CORRUPT' })
    // list() leaves the unreadable record out and keeps the others
    expect((await store.list()).map((r) => r.leaseId)).toEqual([a, b])
    await rm(file)
  })

  it('reads a record written before startedAt was kept as startedAt null', async () => {
    const old = `0x3${'0'.repeat(63)}`
    const { startedAt: _dropped, ...rest } = JSON.parse(await readFile(join(dir, `${a}.json`), 'utf8')) as Record<string, unknown>
    await writeFile(join(dir, `${old}.json`), JSON.stringify({ ...rest, leaseId: old }))
    expect((await store.load(old)).startedAt).toBeNull()
    await rm(join(dir, `${old}.json`))
  })
})
