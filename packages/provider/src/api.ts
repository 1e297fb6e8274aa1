import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { listenReason } from '@gpumesh/net'
import { jsonReplacer } from '@gpumesh/protocol'
import { ProviderStartError } from './errors.js'

/**
 * The local HTTP API and the dashboard: loopback only, every request carries the token from
 * provider.json: `Authorization: Bearer <token>`, `?token=`, or the cookie a browser gets when it opens
 * the dashboard link (`/?token=…`: the answer sets an HttpOnly, SameSite=Strict cookie and redirects to
 * `/` without the token, so the token leaves the address bar and the history). Read-only: it reports,
 * it changes nothing. Every answer carries headers that keep the page to its own origin (CSP
 * `default-src 'self'`, no framing, no referrer).
 */

/** Headers on every answer. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
}

/** The content type of pages (the dashboard); a page opened with `?token=` sets the cookie and redirects. */
const PAGE_CONTENT_TYPE = 'text/html; charset=utf-8'

export type ApiHandler = (query: URLSearchParams) => { contentType: string, body: string } | Promise<{ contentType: string, body: string }>
/** A handler, or `{ page: true, handler }` for a page a browser opens (the dashboard). */
export type ApiRoute = ApiHandler | { page: boolean, handler: ApiHandler }

export interface ApiServerOptions {
  host: string
  port: number
  token: string
  routes: Record<string, ApiRoute>
  logger: Logger
}

export class ApiServer {
  private readonly options: ApiServerOptions
  private server: Server | null = null

  constructor (options: ApiServerOptions) {
    this.options = options
  }

  async start (): Promise<void> {
    if (this.server != null) return
    const server = createServer((req, res) => { this.handle(req, res) })
    server.keepAliveTimeout = 5_000
    server.headersTimeout = 10_000
    server.requestTimeout = 10_000
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException): void => {
        const where = `${this.options.host}:${this.options.port}`
        reject(new ProviderStartError('API_LISTEN_FAILED', `The local API cannot listen on ${where}: ${listenReason(err.code, err.message)}. Set api.port (--api-port; 0 takes any free port) or api.enabled: false.`, { cause: err }))
      }
      server.once('error', failed)
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', failed)
        resolve()
      })
    })
    this.server = server
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server == null) return
    this.server = null
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }

  /** The bound address, e.g. `http://127.0.0.1:7456`; null before start. */
  url (): string | null {
    const address = this.server?.address() as AddressInfo | null | undefined
    if (address == null) return null
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `http://${host}:${address.port}`
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (req.method !== 'GET') {
      this.send(res, 405, 'application/json', JSON.stringify({ error: 'only GET is served' }))
      return
    }
    const route = Object.hasOwn(this.options.routes, url.pathname) ? this.options.routes[url.pathname] : undefined
    const page = route != null && typeof route !== 'function' && route.page
    const auth = this.authorised(req, url)
    if (auth === null) {
      if (page) {
        this.send(res, 401, PAGE_CONTENT_TYPE, '<!doctype html><meta charset="utf-8"><title>gpumesh</title><p>This dashboard needs its token: open the link <code>gpumesh provider start</code> printed (it ends in <code>/?token=…</code>), or read <code>apiToken</code> from provider.json in the data directory.</p>')
      } else {
        this.send(res, 401, 'application/json', JSON.stringify({ error: 'missing or wrong token: read it from provider.json in the data directory' }))
      }
      return
    }
    if (auth === 'query' && page) {
      // The dashboard link: trade the token in the address for a cookie, then show the page without it.
      url.searchParams.delete('token')
      res.writeHead(303, {
        ...SECURITY_HEADERS,
        'set-cookie': `${this.cookieName()}=${this.options.token}; Path=/; HttpOnly; SameSite=Strict`,
        location: url.pathname + url.search,
        'cache-control': 'no-store'
      })
      res.end()
      return
    }
    if (route == null) {
      this.send(res, 404, 'application/json', JSON.stringify({ error: `no such endpoint: ${url.pathname}`, endpoints: Object.keys(this.options.routes) }))
      return
    }
    Promise.resolve()
      .then(async () => (typeof route === 'function' ? route(url.searchParams) : route.handler(url.searchParams)))
      .then((out) => { this.send(res, 200, out.contentType, out.body) })
      .catch((err: unknown) => {
        this.options.logger.error({ err, path: url.pathname }, 'API request failed')
        this.send(res, 500, 'application/json', JSON.stringify({ error: 'internal error; see the provider log' }))
      })
  }

  /** How the request proved the token, or null when it did not. */
  private authorised (req: IncomingMessage, url: URL): 'header' | 'query' | 'cookie' | null {
    const header = req.headers.authorization
    if (header?.startsWith('Bearer ') === true) return this.matches(header.slice(7)) ? 'header' : null
    const query = url.searchParams.get('token')
    if (query != null) return this.matches(query) ? 'query' : null
    const cookie = readCookie(req.headers.cookie, this.cookieName())
    return cookie != null && this.matches(cookie) ? 'cookie' : null
  }

  private matches (given: string): boolean {
    const a = Buffer.from(given)
    const b = Buffer.from(this.options.token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  /** Cookies are per host, not per port: two daemons on 127.0.0.1 each need their own name. */
  private cookieName (): string {
    const address = this.server?.address() as AddressInfo | null | undefined
    return `gpumesh_token_${address?.port ?? this.options.port}`
  }

  private send (res: ServerResponse, status: number, contentType: string, body: string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': contentType, 'cache-control': 'no-store' })
    res.end(body)
  }
}

/** The value of cookie `name` in a Cookie header, or null. */
export function readCookie (header: string | undefined, name: string): string | null {
  if (header == null) return null
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return null
}

/** JSON with bigints as decimal strings. */
export function toJson (value: unknown): string {
  return JSON.stringify(value, jsonReplacer)
}
