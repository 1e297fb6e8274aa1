import { readFile } from 'node:fs/promises'
import type { ApiRoute } from './api.js'

/**
 * The GPU owner's dashboard: one page, its stylesheet and script, all served by the daemon from
 * `packages/provider/dashboard/` (no CDN, no external request: the CSP forbids them). The page reads the
 * same JSON endpoints as `gpumesh provider status`.
 */

const ASSETS_DIR = new URL('../dashboard/', import.meta.url)
const ASSETS: Record<string, { file: string, contentType: string, page: boolean }> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8', page: true },
  '/dashboard.css': { file: 'dashboard.css', contentType: 'text/css; charset=utf-8', page: false },
  '/dashboard.js': { file: 'dashboard.js', contentType: 'text/javascript; charset=utf-8', page: false }
}

/** The dashboard's routes, its files read once at start. */
export async function dashboardRoutes (): Promise<Record<string, ApiRoute>> {
  const routes: Record<string, ApiRoute> = {}
  for (const [path, asset] of Object.entries(ASSETS)) {
    const body = await readFile(new URL(asset.file, ASSETS_DIR), 'utf8')
    const out = { contentType: asset.contentType, body }
    routes[path] = { page: asset.page, handler: () => out }
  }
  return routes
}
