import { marketDomain, verifyJobAuth, type Address, type JobSubmit } from '@gpumesh/protocol'
import type { LeaseRecord, Ledger } from '@gpumesh/ledger'
import { Refusal } from './refusal.js'

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/**
 * The lease, if `verify` (the request's signature check) names its renter and both the stream and the
 * claimed peer id (when the request carries one) are its renter peer. Refuses NO_SUCH_LEASE, BAD_AUTH
 * or NOT_RENTER otherwise.
 */
export function authorizeRenter (ledger: Pick<Ledger, 'getLease'>, leaseId: string, peer: string, claimedPeerId: string | null, verify: (lease: LeaseRecord) => Address): LeaseRecord {
  const lease = ledger.getLease(leaseId)
  if (lease === null) throw new Refusal('NO_SUCH_LEASE', `no lease ${leaseId}`)
  let signer: Address
  try {
    signer = verify(lease)
  } catch (err) {
    throw new Refusal('BAD_AUTH', 'the signature does not verify', { cause: err })
  }
  if (!same(signer, lease.renter)) throw new Refusal('NOT_RENTER', 'signed by a key other than the lease\'s renter')
  if (peer !== lease.renterPeerId || (claimedPeerId !== null && claimedPeerId !== lease.renterPeerId)) {
    throw new Refusal('NOT_RENTER', 'only the lease\'s renter peer may do this')
  }
  return lease
}

/** `authorizeRenter` for a request carrying a JobAuth (submit, attach, artifacts). */
export function authorizeJob (ledger: Pick<Ledger, 'getLease'>, auth: JobSubmit['auth'], peer: string): LeaseRecord {
  return authorizeRenter(ledger, auth.leaseId, peer, auth.peerId, (lease) => verifyJobAuth(auth, marketDomain(lease.chainId)))
}
