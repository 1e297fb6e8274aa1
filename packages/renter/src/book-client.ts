import { multiaddr, request, type GpumeshNode, type Multiaddr } from '@gpumesh/net'
import {
  BOOK_PROTOCOL, LIMITS, decodeBookPage, encodeBookQuery, marketDomain, verifyOffer,
  type BookFilters, type Offer, type ProviderObservation
} from '@gpumesh/protocol'
import { BookReadError } from './errors.js'

/**
 * Reading a matcher's book on `/gpumesh/book/1.0.0`, page by page. Every page is size-capped and
 * schema-checked by protocol's decoder, and every offer's signatures are checked here (a matcher can
 * serve only what providers signed); offers that fail are counted, not returned. The matcher's
 * observations of providers (`includeRecords`) are its word, not signed: they are kept only for
 * providers whose offer verified.
 */

/** Pages fetched at most (100 offers each). */
export const DEFAULT_BOOK_MAX_PAGES = 20

export interface ReadBookOptions {
  node: GpumeshNode
  /** The matcher's addresses (multiaddrs with `/p2p/<id>`). */
  matcher: ReadonlyArray<string | Multiaddr>
  filters: BookFilters
  /** Ask for the matcher's observation of each provider (time watched, interruptions). */
  includeRecords?: boolean
  maxPages?: number
  signal?: AbortSignal
}

export interface BookRead {
  /** Offers whose signatures verified, cheapest first as served. */
  offers: Offer[]
  /** Offers left out because a signature did not verify. */
  invalid: number
  /** By provider peer id; empty unless `includeRecords`. */
  records: Map<string, ProviderObservation>
  /**
   * False when records were asked for but the matcher refused the field (a matcher from before book
   * records, whose strict schema answers INVALID_FIELD); the book was then read without them.
   */
  recordsServed: boolean
}

/** Every page of a matcher's book for `filters`, or throws {@link BookReadError}. */
export async function readBook (o: ReadBookOptions): Promise<BookRead> {
  let targets: Multiaddr[]
  try {
    if (o.matcher.length === 0) throw new Error('none given')
    targets = o.matcher.map((a) => typeof a === 'string' ? multiaddr(a) : a)
  } catch (err) {
    throw new BookReadError('BAD_ADDRESS', `Not a matcher address: ${(err as Error).message}.`, { cause: err })
  }
  const shown = o.matcher.map(String).join(', ')
  const offers: Offer[] = []
  const records = new Map<string, ProviderObservation>()
  let invalid = 0
  let withRecords = o.includeRecords === true
  let recordsServed = true
  let offset: number | null = 0
  for (let i = 0; i < (o.maxPages ?? DEFAULT_BOOK_MAX_PAGES) && offset != null; i++) {
    const query = encodeBookQuery({
      type: 'book-query', filters: o.filters, offset, limit: LIMITS.bookPage, ...(withRecords ? { includeRecords: true } : {})
    })
    let bytes: Uint8Array
    try {
      bytes = await request(o.node, targets, BOOK_PROTOCOL, query, o.signal != null ? { signal: o.signal } : {})
    } catch (err) {
      if (withRecords && i === 0 && (err as { remoteCode?: string }).remoteCode === 'INVALID_FIELD') {
        // An older matcher: read the same page again, without records.
        withRecords = false
        recordsServed = false
        i--
        continue
      }
      throw new BookReadError('MATCHER_UNREACHABLE', `Could not read the book of ${shown}: ${(err as Error).message}.`, { cause: err })
    }
    let page
    try {
      page = decodeBookPage(bytes)
    } catch (err) {
      throw new BookReadError('BAD_PAGE', `The matcher ${shown} answered with a book page that is not valid (${(err as Error).message}).`, { cause: err })
    }
    const verified = new Set<string>()
    for (const offer of page.offers) {
      try {
        verifyOffer(offer, marketDomain(offer.chainId))
        offers.push(offer)
        verified.add(offer.peerId)
      } catch {
        invalid++
      }
    }
    for (const record of page.records ?? []) if (verified.has(record.peerId)) records.set(record.peerId, record)
    offset = page.nextOffset
  }
  return { offers, invalid, records, recordsServed }
}
