/**
 * The provider's /gpumesh/job/1.0.0 service, spoken to with raw frames: who may start a job, in which
 * lease state, with which bundle; and hostile bytes that must leave the daemon serving.
 */
import { randomBytes } from 'node:crypto'
import { Wallet, type BaseWallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeFrame, multiaddr, openFrameStream, type FrameStream, type GpumeshNode } from '@gpumesh/net'
import {
  JOB_MAX_FRAME_BYTES, JOB_PROTOCOL, bytesToHex, decodeMessage, encodeArtifactsRequest, encodeJobAttach, encodeJobSubmit, encodeTerminate,
  marketDomain, signJobAuth, signTerminate, type ArtifactsHeader, type Bytes32, type JobAuth, type JobReply, type LeaseTerms
} from '@gpumesh/protocol'
import { CHAIN_ID, startClient, startProvider, type TestProvider } from '../../../test/provider-helpers.js'
import { leaseFrom, startJobProvider, trainSpec, trainingBundle } from '../../../test/jobs-helpers.js'

const domain = marketDomain(CHAIN_ID)

function auth (wallet: BaseWallet, leaseId: Bytes32, peerId: string): JobAuth {
  return { leaseId, peerId, signature: signJobAuth({ leaseId, peerId }, wallet.privateKey, domain) }
}

async function open (client: GpumeshNode, daemon: TestProvider): Promise<FrameStream> {
  return await openFrameStream(client, daemon.provider.addresses().map((a) => multiaddr(a)), JOB_PROTOCOL, { maxFrameBytes: JOB_MAX_FRAME_BYTES })
}

/** Sends frames and returns the first answer. */
async function ask (client: GpumeshNode, daemon: TestProvider, frames: Uint8Array[]): Promise<JobReply | ArtifactsHeader> {
  const stream = await open(client, daemon)
  try {
    for (const frame of frames) await stream.send(frame)
    const answer = await stream.read()
    if (answer === null) throw new Error('no answer')
    return decodeMessage(answer, ['job-reply', 'artifacts-header'])
  } finally {
    stream.abort()
  }
}

const codeOf = (answer: JobReply | ArtifactsHeader): string => answer.ok ? 'OK' : answer.code ?? 'NONE'

describe('job service refusals', () => {
  let daemon: TestProvider
  let renter: GpumeshNode
  let stranger: GpumeshNode
  const wallet = Wallet.createRandom()
  let bundle: Awaited<ReturnType<typeof trainingBundle>>

  beforeAll(async () => {
    ;[daemon, renter, stranger] = await Promise.all([startJobProvider(), startClient(), startClient()])
    bundle = await trainingBundle()
  })
  afterAll(async () => {
    await Promise.all([renter?.stop(), stranger?.stop()])
    await daemon?.stop()
  })

  const lease = async (jobHash: Bytes32 = bundle.sha256): Promise<LeaseTerms> => await leaseFrom(renter, daemon.provider.addresses(), wallet, jobHash)
  const submit = (a: JobAuth, bundleSize = bundle.bytes.length): Uint8Array =>
    encodeJobSubmit({ type: 'job-submit', auth: a, spec: trainSpec(5), bundleSize })

  it('refuses anyone but the lease\'s renter: unknown lease, bad signature, other key, other peer', async () => {
    const terms = await lease()
    const renterId = renter.peerId.toString()
    expect(codeOf(await ask(renter, daemon, [submit(auth(wallet, bytesToHex(randomBytes(32)) as Bytes32, renterId))]))).toBe('NO_SUCH_LEASE')
    const tampered = { ...auth(wallet, terms.leaseId, renterId), peerId: stranger.peerId.toString() }
    expect(codeOf(await ask(renter, daemon, [submit(tampered)]))).toBe('BAD_AUTH')
    expect(codeOf(await ask(renter, daemon, [submit(auth(Wallet.createRandom(), terms.leaseId, renterId))]))).toBe('NOT_RENTER')
    // The renter's key, but another peer: claiming the renter's peer id, or its own.
    expect(codeOf(await ask(stranger, daemon, [submit(auth(wallet, terms.leaseId, renterId))]))).toBe('NOT_RENTER')
    expect(codeOf(await ask(stranger, daemon, [submit(auth(wallet, terms.leaseId, stranger.peerId.toString()))]))).toBe('NOT_RENTER')
    expect(codeOf(await ask(stranger, daemon, [encodeJobAttach({ type: 'job-attach', auth: auth(wallet, terms.leaseId, renterId), fromSequence: 0 })]))).toBe('NOT_RENTER')
    expect(codeOf(await ask(stranger, daemon, [encodeArtifactsRequest({ type: 'artifacts-request', auth: auth(wallet, terms.leaseId, renterId) })]))).toBe('NOT_RENTER')
    // None of it touched the lease.
    expect(daemon.provider.ledger.getLease(terms.leaseId)?.state).toBe('accepted')
  })

  it('refuses a lease in the wrong state: cancelled before its job started', async () => {
    const terms = await lease()
    const fields = { leaseId: terms.leaseId, reason: 'changed my mind', at: Date.now() }
    const cancel = encodeTerminate({ type: 'terminate', ...fields, signature: signTerminate(fields, wallet.privateKey, domain) })
    const strangerCancel = encodeTerminate({ type: 'terminate', ...fields, signature: signTerminate(fields, Wallet.createRandom().privateKey, domain) })
    expect(codeOf(await ask(renter, daemon, [strangerCancel]))).toBe('NOT_RENTER')
    expect(codeOf(await ask(renter, daemon, [cancel]))).toBe('OK')
    expect(daemon.provider.ledger.getLease(terms.leaseId)).toMatchObject({ state: 'terminated', stateReason: 'RENTER_CANCEL' })
    const a = auth(wallet, terms.leaseId, renter.peerId.toString())
    expect(codeOf(await ask(renter, daemon, [submit(a)]))).toBe('WRONG_STATE')
    expect(codeOf(await ask(renter, daemon, [encodeJobAttach({ type: 'job-attach', auth: a, fromSequence: 0 })]))).toBe('WRONG_STATE')
    expect(codeOf(await ask(renter, daemon, [encodeArtifactsRequest({ type: 'artifacts-request', auth: a })]))).toBe('WRONG_STATE')
    expect(codeOf(await ask(renter, daemon, [cancel]))).toBe('WRONG_STATE')
  })

  it('refuses a bundle whose sha256 is not the order\'s job hash, and fails the lease', async () => {
    const terms = await lease(bytesToHex(randomBytes(32)) as Bytes32)
    const answer = await ask(renter, daemon, [submit(auth(wallet, terms.leaseId, renter.peerId.toString())), bundle.bytes])
    expect(codeOf(answer)).toBe('HASH_MISMATCH')
    expect(daemon.provider.ledger.getLease(terms.leaseId)?.state).toBe('failed')
  })

  it('refuses an oversize bundle before reading it, and more bytes than announced', async () => {
    const terms = await lease()
    const a = auth(wallet, terms.leaseId, renter.peerId.toString())
    expect(codeOf(await ask(renter, daemon, [submit(a, 64 * 1024 + 1)]))).toBe('TOO_LARGE')
    expect(daemon.provider.ledger.getLease(terms.leaseId)?.state).toBe('accepted')
    expect(codeOf(await ask(renter, daemon, [submit(a, 10), bundle.bytes]))).toBe('TOO_LARGE')
  })

  it('keeps serving after hostile bytes on the job protocol', async () => {
    const junk: Array<() => Promise<void>> = [
      async () => { const s = await open(stranger, daemon); await s.send(randomBytes(300)); await s.read().catch(() => null); s.abort() },
      async () => { const s = await open(stranger, daemon); await s.send(new TextEncoder().encode('{"type":"job-submit","auth":{}}')); await s.read().catch(() => null); s.abort() },
      async () => { const s = await open(stranger, daemon); s.stream.send(encodeFrame(new Uint8Array(JOB_MAX_FRAME_BYTES + 1))); await s.read().catch(() => null); s.abort() },
      async () => { const s = await open(stranger, daemon); s.stream.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])); await s.read().catch(() => null); s.abort() },
      async () => { const s = await open(stranger, daemon); s.stream.send(Uint8Array.of(0x80)); await s.close(); await s.read().catch(() => null) },
      async () => { const s = await open(stranger, daemon); s.abort() }
    ]
    await Promise.all(junk.map(async (j) => { await j().catch(() => {}) }))
    await Promise.all(Array.from({ length: 20 }, async () => { await ask(stranger, daemon, [randomBytes(64)]).catch(() => null) }))
    expect(daemon.provider.running).toBe(true)
    const terms = await lease()
    const answer = await ask(stranger, daemon, [encodeJobAttach({ type: 'job-attach', auth: auth(wallet, terms.leaseId, renter.peerId.toString()), fromSequence: 0 })])
    expect(codeOf(answer)).toBe('NOT_RENTER')
  })

  it('answers RUNNER_DISABLED when the provider runs no jobs', async () => {
    const plain = await startProvider({ gpus: 1 })
    try {
      const terms = await leaseFrom(renter, plain.provider.addresses(), wallet, bundle.sha256)
      expect(codeOf(await ask(renter, plain, [submit(auth(wallet, terms.leaseId, renter.peerId.toString())), bundle.bytes]))).toBe('RUNNER_DISABLED')
      expect(plain.provider.ledger.getLease(terms.leaseId)?.state).toBe('accepted')
    } finally {
      await plain.stop()
    }
  })
})
