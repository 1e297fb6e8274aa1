import { expect } from 'vitest'
import type { Address, OfferBody } from '@gpumesh/protocol'

/** An offer body of `peerId` (unsigned): the terms no renter test varies, then `fields`. */
export function offerBody (peerId: string, fields: Pick<OfferBody, 'binding' | 'gpus' | 'token' | 'chainId' | 'issuedAt' | 'expiresAt'> & Partial<OfferBody>): OfferBody {
  return {
    type: 'offer',
    peerId,
    fleet: null,
    addresses: [],
    host: { cpuModel: null, cpuCores: null, memoryMiB: null, diskFreeMiB: null, os: null },
    escrow: '0x0000000000000000000000000000000000000000' as Address,
    region: null,
    minLeaseSec: 60,
    maxLeaseSec: 86_400,
    billingIntervalSec: 60,
    paymentGraceSec: 60,
    sequence: 1,
    ...fields
  }
}

/** The error `p` rejects with, once the test has checked its name; fails the test when `p` resolves. */
export async function rejection<E extends Error> (p: Promise<unknown>, name: string): Promise<E> {
  try {
    await p
  } catch (err) {
    expect((err as Error).name).toBe(name)
    return err as E
  }
  throw new Error(`expected a${/^[AEIOU]/.test(name) ? 'n' : ''} ${name}`)
}
