/**
 * Shared pieces of the job protocol scenarios: a provider running the process runner with 1 s billing,
 * the training fixture as a bundle, and a lease obtained by proposing the renter's own signed order.
 */
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { BaseWallet } from 'ethers'
import { multiaddr } from '@multiformats/multiaddr'
import { create } from 'tar'
import { request, type GpumeshNode } from '@gpumesh/net'
import {
  LEASE_PROTOCOL, decodeLeaseDecision, encodeLeaseProposal, marketDomain, settlementDomain, type Address, type Bytes32,
  type Eip712Domain, type JobSpec, type LeaseDecision, type LeaseTerms
} from '@gpumesh/protocol'
import type { ConfigLayer } from '@gpumesh/provider'
import type { JobClientOptions } from '@gpumesh/renter'
import { CHAIN_ID, proposal, requirements, signedOrder, startProvider, type TestProvider } from './provider-helpers.js'

export const JOB_FIXTURES = fileURLToPath(new URL('../packages/provider/test/fixtures/jobs/', import.meta.url))

/** A provider that runs jobs with the process runner, bills every second and stops unpaid jobs quickly. */
export async function startJobProvider (config: ConfigLayer = {}, options: Parameters<typeof startProvider>[0] = {}): Promise<TestProvider> {
  return await startProvider({
    gpus: 4,
    ...options,
    config: {
      runner: { kind: 'process', stopGraceSec: 2, maxBundleBytes: 64 * 1024, process: { sameUser: true } },
      billing: { intervalSec: 1, paymentGraceSec: 2 },
      ...config
    }
  })
}

/** The training fixture (and what else is named) as a tar.gz, with its sha256 (the order's jobHash). */
export async function trainingBundle (files: string[] = ['train.mjs']): Promise<{ bytes: Buffer, sha256: Bytes32 }> {
  const chunks: Buffer[] = []
  for await (const chunk of create({ gzip: true, cwd: JOB_FIXTURES, portable: true }, files) as AsyncIterable<Buffer>) chunks.push(chunk)
  const bytes = Buffer.concat(chunks)
  return { bytes, sha256: `0x${createHash('sha256').update(bytes).digest('hex')}` }
}

export function trainSpec (steps: number, stepMs = 100, maxRunTimeSec = 120): JobSpec {
  return { command: process.execPath, args: ['train.mjs'], env: { TRAIN_STEPS: String(steps), TRAIN_STEP_MS: String(stepMs) }, image: null, maxRunTimeSec }
}

/** Proposes the renter's own signed order straight to the provider; returns the accepted terms. */
export async function leaseFrom (client: GpumeshNode, providerAddresses: string[], wallet: BaseWallet, jobHash: Bytes32, order: { token?: Address } = {}): Promise<LeaseTerms> {
  const decision = await proposeTo(client, providerAddresses, wallet, jobHash, order)
  if (!decision.accepted) throw new Error(`lease rejected: ${decision.code} ${decision.message}`)
  return decision.terms
}

/** The provider's decision on the renter's own signed order. */
export async function proposeTo (client: GpumeshNode, providerAddresses: string[], wallet: BaseWallet, jobHash: Bytes32, order: { token?: Address } = {}): Promise<LeaseDecision> {
  const renter = { key: wallet.privateKey, address: wallet.address as `0x${string}` }
  const signed = signedOrder(renter, client.peerId.toString(), { jobHash, requirements: requirements({ gpuCount: 1 }), ...order })
  return decodeLeaseDecision(await request(client, providerAddresses.map((a) => multiaddr(a)), LEASE_PROTOCOL, encodeLeaseProposal(proposal(signed))))
}

/**
 * The job client's options for a lease: vouchers under the settlement domain its terms name (or
 * `voucherDomain`, to sign for another), everything else under the market domain.
 */
export function clientOptions (node: GpumeshNode, wallet: BaseWallet, terms: LeaseTerms, budget = 10n ** 12n, voucherDomain: Eip712Domain = settlementDomain(terms)): JobClientOptions {
  return {
    node,
    wallet,
    terms,
    settlementDomain: voucherDomain,
    marketDomain: marketDomain(CHAIN_ID),
    budget
  }
}
