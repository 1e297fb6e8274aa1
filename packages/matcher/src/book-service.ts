/**
 * Serves the book on `/gpumesh/book/1.0.0`: a `book-query` (filters, offset, limit) is answered with a
 * `book-page` of signed offers, cheapest first. A page ends early rather than pass the message cap.
 * A query with `includeRecords` also gets this matcher's observation of each listed provider (time
 * watched, interruptions), counted against the same cap.
 */
import { HandlerError, handle } from '@gpumesh/net'
import {
  BOOK_PROTOCOL, MAX_MESSAGE_BYTES, decodeBookQuery, encodeBookPage, isProtocolError, jsonReplacer
} from '@gpumesh/protocol'
import type { RateLimitOptions, StreamHost } from '@gpumesh/net'
import type { BookQuery, Offer, ProviderObservation } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import type { Clock } from '@gpumesh/protocol'
import type { BookFilters, OrderBook } from './order-book.js'
import type { ProviderRecords } from './provider-record.js'

export interface BookServiceOptions {
  rateLimit: RateLimitOptions
}

export interface BookServiceComponents {
  node: StreamHost
  book: OrderBook
  clock: Clock
  logger: Logger
  /** Where `includeRecords` answers come from; without it, pages carry an empty `records`. */
  records?: ProviderRecords
}

/** Room for the page's envelope (type, nextOffset, bookSize, brackets). */
const PAGE_OVERHEAD_BYTES = 256
const utf8 = new TextEncoder()

/** The core book's filters for a wire query. */
export function toBookFilters (query: BookQuery): BookFilters {
  const f = query.filters
  const filters: BookFilters = { includeSimulated: f.includeSimulated }
  if (f.gpuClass != null) filters.class = f.gpuClass
  if (f.minGpus != null) filters.minCount = f.minGpus
  if (f.minMemoryMiB != null) filters.minMemoryMiB = f.minMemoryMiB
  if (f.maxPricePerGpuHour != null) filters.maxPricePerGpuHour = f.maxPricePerGpuHour
  if (f.region != null) filters.region = f.region
  if (f.operator != null) filters.operator = f.operator
  return filters
}

export class BookService {
  readonly #components: BookServiceComponents
  readonly #options: BookServiceOptions
  readonly #log: Logger
  #started = false

  constructor (components: BookServiceComponents, options: BookServiceOptions) {
    this.#components = components
    this.#options = options
    this.#log = components.logger.child({ module: 'book-service' })
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await handle(this.#components.node, BOOK_PROTOCOL, async (bytes) => this.page(bytes), {
      maxRequestBytes: MAX_MESSAGE_BYTES['book-query'],
      maxResponseBytes: MAX_MESSAGE_BYTES['book-page'],
      rateLimit: this.#options.rateLimit,
      maxInboundStreams: 8
    })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    try {
      await this.#components.node.unhandle(BOOK_PROTOCOL)
    } catch (err) {
      this.#log.debug({ err }, 'unhandle failed (node already stopping)')
    }
  }

  /** Answers one encoded query with an encoded page; throws HandlerError with a reason code. */
  page (bytes: Uint8Array): Uint8Array {
    let query: BookQuery
    try {
      query = decodeBookQuery(bytes)
    } catch (err) {
      if (isProtocolError(err)) throw new HandlerError(err.code, err.message.slice(0, 256), { cause: err })
      throw err
    }
    const { book, clock, records } = this.#components
    const now = clock.now()
    // One more than asked tells whether there is a next page.
    const listed = book.list({ filters: toBookFilters(query), offset: query.offset, limit: query.limit + 1, now })
    const offers: Offer[] = []
    const observations: ProviderObservation[] = []
    let size = PAGE_OVERHEAD_BYTES
    for (const entry of listed.slice(0, query.limit)) {
      let bytes = utf8.encode(JSON.stringify(entry.offer, jsonReplacer)).byteLength + 1
      const observation = query.includeRecords === true ? records?.observation(entry.peerId, now) : undefined
      if (observation != null) bytes += utf8.encode(JSON.stringify(observation)).byteLength + 1
      if (size + bytes > MAX_MESSAGE_BYTES['book-page']) break
      size += bytes
      offers.push(entry.offer)
      if (observation != null) observations.push(observation)
    }
    const more = listed.length > offers.length
    return encodeBookPage({
      type: 'book-page',
      offers,
      nextOffset: more ? query.offset + offers.length : null,
      bookSize: book.size,
      ...(query.includeRecords === true ? { records: observations } : {})
    })
  }
}
