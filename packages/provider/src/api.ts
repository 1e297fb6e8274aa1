import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { listenReason } from '@gpumesh/net'
import { ProviderStartError } from './errors.js'

/**
 * The local HTTP API: loopback only, every request carries the token from provider.json
 * (`Authorization: Bearer <token>`, or `?token=` for a browser). Read-only: it reports, it changes
 * nothing.
 */

export type ApiRoute = (query: URLSearchParams) => { contentType: string, body: string } | Promise<{ contentType: string, body: string }>

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
    if (!this.authorised(req, url)) {
      this.send(res, 401, 'application/json', JSON.stringify({ error: 'missing or wrong token: read it from provider.json in the data directory' }))
      return
    }
    const route = Object.hasOwn(this.options.routes, url.pathname) ? this.options.routes[url.pathname] : undefined
    if (route == null) {
      this.send(res, 404, 'application/json', JSON.stringify({ error: `no such endpoint: ${url.pathname}`, endpoints: Object.keys(this.options.routes) }))
      return
    }
    Promise.resolve()
      .then(async () => route(url.searchParams))
      .then((out) => { this.send(res, 200, out.contentType, out.body) })
      .catch((err: unknown) => {
        this.options.logger.error({ err, path: url.pathname }, 'API request failed')
        this.send(res, 500, 'application/json', JSON.stringify({ error: 'internal error; see the provider log' }))
      })
  }

  private authorised (req: IncomingMessage, url: URL): boolean {
    const header = req.headers.authorization
    const given = header?.startsWith('Bearer ') === true ? header.slice(7) : url.searchParams.get('token')
    if (given == null) return false
    const a = Buffer.from(given)
    const b = Buffer.from(this.options.token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  private send (res: ServerResponse, status: number, contentType: string, body: string): void {
    res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' })
    res.end(body)
  }
}

/** JSON with bigints as decimal strings. */
export function toJson (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
}
