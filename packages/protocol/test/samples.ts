/** Sample messages, signed with fixed keys, shared by the tests and the test vectors. */
import { Wallet } from 'ethers'
import {
  paymentKeyAddress, signFleetMembership, signJobAuth, signLeaseTerms, signOffer, signOrder, signPeerBinding,
  signTerminate, signUsageReport, signVoucher
} from '@gpumesh/protocol'
import type {
  Address, Bytes32, Eip712Domain, JobAttach, JobEvent, JobSubmit, LeaseDecision, LeaseProposal, LeaseTerms, Message,
  Offer, OfferBody, Order, SignedUsageReport, Terminate, UsageReport, Voucher
} from '@gpumesh/protocol'

export const RENTER_KEY = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'
export const PROVIDER_KEY = '0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'
export const OPERATOR_KEY = '0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f'
export const RENTER = paymentKeyAddress(RENTER_KEY)
export const PROVIDER = paymentKeyAddress(PROVIDER_KEY)
export const OPERATOR = paymentKeyAddress(OPERATOR_KEY)
export const renterWallet = new Wallet(RENTER_KEY)

export const DOMAIN: Eip712Domain = { chainId: 31337n, verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' }
export const TOKEN: Address = '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512'
export const PROVIDER_PEER = '12D3KooWLRPJAA5o6sMZVfNeudHwsuGisCBsVzHBjzZnK2nSzCK8'
export const RENTER_PEER = '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'
export const LEASE_ID: Bytes32 = `0x${'a1'.repeat(32)}`
export const ORDER_ID: Bytes32 = `0x${'b2'.repeat(32)}`
export const JOB_HASH: Bytes32 = `0x${'c3'.repeat(32)}`
export const T0 = 1_760_000_000_000

export function sampleOffer (): Offer {
  const body: OfferBody = {
    type: 'offer',
    peerId: PROVIDER_PEER,
    binding: { peerId: PROVIDER_PEER, payment: PROVIDER, proof: signPeerBinding({ peerId: PROVIDER_PEER, payment: PROVIDER }, PROVIDER_KEY, DOMAIN) },
    fleet: {
      operator: OPERATOR,
      member: PROVIDER,
      peerId: PROVIDER_PEER,
      expiresAt: T0 + 86_400_000,
      proof: signFleetMembership({ operator: OPERATOR, member: PROVIDER, peerId: PROVIDER_PEER, expiresAt: T0 + 86_400_000 }, OPERATOR_KEY, DOMAIN)
    },
    addresses: ['/ip4/127.0.0.1/tcp/4001'],
    gpus: [{
      class: 'H100-SXM-80GB',
      vendor: 'nvidia',
      memoryMiB: 81_559,
      computeCapability: '9.0',
      countFree: 6,
      countTotal: 8,
      pricePerGpuHour: 2_500_000n,
      simulated: false
    }],
    host: { cpuModel: 'AMD EPYC 9654', cpuCores: 96, memoryMiB: 1_548_000, diskFreeMiB: 4_000_000, os: 'Ubuntu 24.04' },
    token: TOKEN,
    chainId: 31337n,
    escrow: DOMAIN.verifyingContract,
    region: 'eu-west',
    minLeaseSec: 600,
    maxLeaseSec: 86_400,
    billingIntervalSec: 300,
    paymentGraceSec: 120,
    sequence: 42,
    issuedAt: T0,
    expiresAt: T0 + 600_000
  }
  return { ...body, signature: signOffer(body, PROVIDER_KEY, DOMAIN) }
}

export function sampleOrder (): Order {
  const body: Omit<Order, 'signature'> = {
    type: 'order',
    orderId: ORDER_ID,
    renter: RENTER,
    renterPeerId: RENTER_PEER,
    requirements: {
      gpuCount: 2,
      classes: ['H100-SXM-80GB', 'A100-SXM4-80GB'],
      minMemoryMiB: 40_000,
      minComputeCapability: '8.0',
      region: null,
      operators: [OPERATOR],
      escrow: DOMAIN.verifyingContract,
      allowSimulated: false
    },
    maxPricePerGpuHour: 3_000_000n,
    durationSec: 3600,
    token: TOKEN,
    chainId: 31337n,
    jobHash: JOB_HASH,
    expiresAt: T0 + 300_000
  }
  return { ...body, signature: signOrder(body, RENTER_KEY, DOMAIN) }
}

export function sampleTerms (): LeaseTerms {
  return {
    leaseId: LEASE_ID,
    orderId: ORDER_ID,
    provider: PROVIDER,
    providerPeerId: PROVIDER_PEER,
    renter: RENTER,
    renterPeerId: RENTER_PEER,
    token: TOKEN,
    chainId: 31337n,
    escrow: DOMAIN.verifyingContract,
    pricePerGpuHour: 2_500_000n,
    gpus: ['GPU-1f2e3d4c-0000-1111-2222-333344445555', 'GPU-1f2e3d4c-0000-1111-2222-333344446666'],
    gpuClass: 'H100-SXM-80GB',
    durationSec: 3600,
    billingIntervalSec: 300,
    paymentGraceSec: 120,
    startDeadline: T0 + 120_000,
    jobHash: JOB_HASH,
    providerAddresses: ['/ip4/127.0.0.1/tcp/4001', '/ip4/10.0.0.2/tcp/4001'],
    acceptedAt: T0
  }
}

export function sampleReport (): UsageReport {
  return {
    leaseId: LEASE_ID,
    provider: PROVIDER,
    renter: RENTER,
    token: TOKEN,
    periodIndex: 3,
    startOffsetMs: 900_000,
    endOffsetMs: 1_200_000,
    gpuMilliseconds: 600_000n,
    amount: 416_666n,
    cumulativeAmount: 1_666_664n,
    avgUtilizationBp: 9_712,
    peakMemoryMiB: null,
    energyMilliJoules: 123_456_789n,
    final: false
  }
}

export function sampleSignedReport (): SignedUsageReport {
  const report = sampleReport()
  return { report, signature: signUsageReport(report, PROVIDER_KEY, DOMAIN) }
}

export function sampleVoucher (): Voucher {
  const fields = { leaseId: LEASE_ID, provider: PROVIDER, renter: RENTER, token: TOKEN, cumulativeAmount: 1_666_664n, sequence: 4n }
  return { type: 'voucher', ...fields, chainId: DOMAIN.chainId, verifyingContract: DOMAIN.verifyingContract, signature: signVoucher(fields, RENTER_KEY, DOMAIN) }
}

export function sampleTerminate (): Terminate {
  const fields = { leaseId: LEASE_ID, reason: 'RENTER_CANCEL', at: T0 + 1_300_000 }
  return { type: 'terminate', ...fields, signature: signTerminate(fields, RENTER_KEY, DOMAIN) }
}

export function sampleJobAuth (): JobSubmit['auth'] {
  return { leaseId: LEASE_ID, peerId: RENTER_PEER, signature: signJobAuth({ leaseId: LEASE_ID, peerId: RENTER_PEER }, RENTER_KEY, DOMAIN) }
}

/** One valid instance of every message type (several for the unions). */
export function sampleMessages (): Message[] {
  const terms = sampleTerms()
  const proposal: LeaseProposal = { type: 'lease-proposal', order: sampleOrder(), pricePerGpuHour: 2_500_000n, offerSequence: 42, gpuClass: 'H100-SXM-80GB' }
  const accepted: LeaseDecision = { type: 'lease-decision', accepted: true, terms, signature: signLeaseTerms(terms, PROVIDER_KEY, DOMAIN) }
  const rejected: LeaseDecision = { type: 'lease-decision', accepted: false, orderId: ORDER_ID, code: 'PRICE_TOO_LOW', message: 'below floor' }
  const submit: JobSubmit = {
    type: 'job-submit',
    auth: sampleJobAuth(),
    spec: { command: 'python', args: ['train.py', '--epochs', '3'], env: { WANDB_MODE: 'offline' }, image: null, maxRunTimeSec: 3600 },
    bundleSize: 1_048_576
  }
  const attach: JobAttach = { type: 'job-attach', auth: sampleJobAuth(), fromSequence: 17 }
  const events: JobEvent[] = [
    { type: 'job-event', leaseId: LEASE_ID, sequence: 1, at: T0, kind: 'started' },
    { type: 'job-event', leaseId: LEASE_ID, sequence: 2, at: T0 + 1, kind: 'log', stream: 'stderr', text: 'epoch 1 loss=0.42 ✓' },
    { type: 'job-event', leaseId: LEASE_ID, sequence: 3, at: T0 + 2, kind: 'usage', report: sampleSignedReport() },
    { type: 'job-event', leaseId: LEASE_ID, sequence: 4, at: T0 + 3, kind: 'exit', exitCode: null, state: 'terminated' },
    { type: 'job-event', leaseId: LEASE_ID, sequence: 5, at: T0 + 4, kind: 'terminated', state: 'terminated', reason: 'UNPAID' }
  ]
  return [sampleOffer(), sampleOrder(), proposal, accepted, rejected, submit, attach, ...events, sampleVoucher(), sampleTerminate()]
}

/** The matcher's messages: order results (both kinds), a book query and a book page. */
export function sampleMarketMessages (): Message[] {
  const terms = sampleTerms()
  const leased: Message = {
    type: 'order-result',
    status: 'leased',
    orderId: ORDER_ID,
    lease: { terms, signature: signLeaseTerms(terms, PROVIDER_KEY, DOMAIN) },
    providerPeerId: PROVIDER_PEER,
    providerAddresses: ['/ip4/127.0.0.1/tcp/4001']
  }
  const noMatch: Message = {
    type: 'order-result',
    status: 'no-match',
    orderId: ORDER_ID,
    explanation: {
      offersConsidered: 5,
      fitting: 0,
      reasons: [{ code: 'TOO_FEW_GPUS', count: 3 }, { code: 'PRICE', count: 2 }],
      cheapestPricePerGpuHour: 2_100_000n,
      declined: [{ providerPeerId: PROVIDER_PEER, code: 'NO_CAPACITY' }],
      message: '5 offers: 3 too few GPUs, 2 above your price; the cheapest fitting would need 2.10/GPU-hour'
    }
  }
  const query: Message = {
    type: 'book-query',
    filters: { gpuClass: 'H100-SXM-80GB', minGpus: 2, minMemoryMiB: null, maxPricePerGpuHour: 3_000_000n, region: 'eu-west', operator: OPERATOR, includeSimulated: false },
    offset: 0,
    limit: 50
  }
  const page: Message = { type: 'book-page', offers: [sampleOffer()], nextOffset: null, bookSize: 1 }
  return [leased, noMatch, query, page]
}
