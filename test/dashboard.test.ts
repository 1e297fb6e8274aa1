/**
 * The GPU owner's dashboard against a provider with a live lease (process runner, 1 s billing, the
 * training fixture running): the token link trades the token for a cookie, requests without it are
 * refused, the JSON endpoints show the cost rising, and headless Chromium (Debian's `chromium` driven
 * by playwright-core) shows the GPUs, the lease with its cost rising and the earnings, and an idle
 * provider saying why nothing is leased; screenshots (laptop and phone width, and the idle one) go to
 * .test-results/ for a person to look at. Where no Chromium is installed the browser part says so in
 * its title and checks the page over HTTP only. /metrics is read by a Prometheus text-format parser
 * (parse-prometheus-text-format, prom2json's shape).
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { Wallet } from 'ethers'
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { GpumeshNode } from '@gpumesh/net'
import { submitJob } from '@gpumesh/renter'
import { StandInProber, simulatedGpu, startClient, startProvider, type TestProvider } from './provider-helpers.js'
import { clientOptions, leaseFrom, startJobProvider, trainSpec, trainingBundle } from './jobs-helpers.js'

const RESULTS = '.test-results'
const CHROMIUM = [process.env.GPUMESH_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']
  .find((p): p is string => p != null && p !== '' && existsSync(p)) ?? null

interface ActiveLeases { tokenDecimals: number, leases: Array<{ leaseId: string, state: string, costSoFar: string, metered: string, elapsedMs: number, pricePerHour: string }> }

describe('provider dashboard and /metrics', () => {
  let daemon: TestProvider
  let client: GpumeshNode
  let base: string
  let token: string
  let leaseId: string
  const stopJob = new AbortController()
  let job: Promise<unknown> = Promise.resolve()

  beforeAll(async () => {
    // Four simulated H100s whose probe reports a temperature and power draw; GPU 3 is unhealthy.
    const prober = new StandInProber(4)
    prober.gpus = prober.gpus.map((g, i) => simulatedGpu(i, { temperatureC: 50 + i, powerDrawW: 100 + i * 10, memoryUsedMiB: 1024 }))
    prober.gpus[3] = simulatedGpu(3, { healthy: false, temperatureC: 97, problems: ['temperature 97 °C is above probe.maxTemperatureC (90 °C)'] })
    ;[daemon, client] = await Promise.all([startJobProvider({ probe: { intervalSec: 1 } }, { prober }), startClient()])
    base = daemon.provider.apiUrl() as string
    token = daemon.provider.apiToken
    const wallet = Wallet.createRandom()
    const bundle = await trainingBundle()
    const terms = await leaseFrom(client, daemon.provider.addresses(), wallet, bundle.sha256)
    leaseId = terms.leaseId
    // A long job: the lease stays live for the whole file; afterAll stops it.
    job = submitJob({ ...clientOptions(client, wallet, terms), signal: stopJob.signal, spec: trainSpec(600, 100), bundle: bundle.bytes, bundleSize: bundle.bytes.length }).catch(() => {})
    await vi.waitFor(() => { expect(daemon.provider.ledger.usagePeriods(leaseId).length).toBeGreaterThan(0) }, { timeout: 20_000, interval: 100 })
  }, 60_000)

  afterAll(async () => {
    stopJob.abort()
    await client?.stop()
    await daemon?.stop()
    await job
  })

  const get = async (path: string, headers: Record<string, string> = {}): Promise<Response> =>
    await fetch(base + path, { headers, redirect: 'manual' })

  it('refuses every request without the token, and trades the token link for an HttpOnly SameSite=Strict cookie', async () => {
    const refused = await get('/')
    expect(refused.status).toBe(401)
    expect(await refused.text()).toContain('needs its token')
    expect((await get('/status')).status).toBe(401)
    expect((await get('/dashboard.js')).status).toBe(401)
    expect((await get('/', { cookie: `gpumesh_token_${new URL(base).port}=${'0'.repeat(token.length)}` })).status).toBe(401)

    const link = await get(`/?token=${token}`)
    expect(link.status).toBe(303)
    expect(link.headers.get('location')).toBe('/')
    const cookie = link.headers.get('set-cookie') as string
    expect(cookie).toMatch(/^gpumesh_token_\d+=[0-9a-f]+; Path=\/; HttpOnly; SameSite=Strict$/)

    const page = await get('/', { cookie: cookie.split(';')[0] as string })
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toContain('text/html')
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'")
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    expect(page.headers.get('x-frame-options')).toBe('DENY')
    const html = await page.text()
    // Every asset from the daemon: no absolute URL to anywhere else.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
    expect((await get('/dashboard.js', { cookie: cookie.split(';')[0] as string })).headers.get('content-type')).toContain('javascript')
  })

  it('serves the active lease with its cost so far rising, GPU history and earnings history as JSON', async () => {
    const auth = { authorization: `Bearer ${token}` }
    const first = await (await get('/leases/active', auth)).json() as ActiveLeases
    expect(first.tokenDecimals).toBe(6)
    expect(first.leases).toHaveLength(1)
    expect(first.leases[0]).toMatchObject({ leaseId, state: 'running', pricePerHour: '2000000' })
    const cost0 = BigInt(first.leases[0]?.costSoFar as string)
    expect(cost0).toBeGreaterThanOrEqual(BigInt(first.leases[0]?.metered as string))
    await vi.waitFor(async () => {
      const later = await (await get('/leases/active', auth)).json() as ActiveLeases
      expect(BigInt(later.leases[0]?.costSoFar as string)).toBeGreaterThan(cost0)
    }, { timeout: 10_000, interval: 200 })

    const history = await (await get('/gpus/history', auth)).json() as { gpus: Array<{ uuid: string, index: number, points: Array<{ at: number, utilizationPercent: number | null, temperatureC: number | null, powerDrawW: number | null }> }> }
    expect(history.gpus).toHaveLength(4)
    const gpu3 = history.gpus.find((g) => g.index === 3)
    expect(gpu3?.points.at(-1)?.temperatureC).toBe(97)
    // The leased GPU reads the meter's sampler: synthetic utilisation while the job runs.
    const leased = daemon.provider.inventory.gpus().find((g) => g.state === 'leased')
    await vi.waitFor(async () => {
      const h = await (await get('/gpus/history', auth)).json() as typeof history
      expect(h.gpus.find((g) => g.uuid === leased?.uuid)?.points.at(-1)?.utilizationPercent).toBeGreaterThan(50)
    }, { timeout: 10_000, interval: 200 })

    await vi.waitFor(async () => {
      const earnings = await (await get('/earnings/history', auth)).json() as { tokens: Array<{ points: Array<{ accrued: string }> }> }
      expect(BigInt(earnings.tokens[0]?.points.at(-1)?.accrued ?? '0')).toBeGreaterThan(0n)
    }, { timeout: 10_000, interval: 200 })
  })

  it(CHROMIUM === null
    ? 'shows the page in a browser (no Chromium installed: install Debian\'s chromium to run this in a browser; checked the page over HTTP only)'
    : `shows the GPUs, the lease with its cost rising and the earnings in headless Chromium (${CHROMIUM}), and saves screenshots`, async () => {
    if (CHROMIUM === null) {
      const page = await (await get('/', { authorization: `Bearer ${token}` })).text()
      expect(page).toContain('id="gpus"')
      return
    }
    let browser: Browser | null = null
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
      const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } })
      const page = await context.newPage()
      const problems: string[] = []
      const foreign: string[] = []
      page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()) })
      page.on('pageerror', (e) => { problems.push(e.message) })
      page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()) })

      await page.goto(`${base}/?token=${token}`)
      // The token left the address bar: the cookie carries it from here on.
      expect(page.url()).toBe(`${base}/`)
      await page.locator('#gpus .gpu').nth(3).waitFor()
      expect(await page.locator('#gpus .gpu').count()).toBe(4)
      expect(await page.locator('#gpus .gpu .state-leased').count()).toBe(1)
      expect(await page.locator('#gpus').innerText()).toContain('temperature 97 °C is above')
      expect(await page.locator('#gpus').innerText()).toContain('52 °C')

      const cost = page.locator(`#leases .lease[data-lease="${leaseId}"] .cost`)
      await cost.waitFor()
      const before = BigInt(await cost.getAttribute('data-base-units') as string)
      expect(await cost.innerText()).toMatch(/^\d[\d,]*\.\d{2,6}$/)
      await vi.waitFor(async () => {
        expect(BigInt(await cost.getAttribute('data-base-units') as string)).toBeGreaterThan(before)
      }, { timeout: 10_000, interval: 250 })
      await vi.waitFor(async () => {
        expect(await page.locator('#earnings .earnings .accrued').innerText()).not.toBe('0.00')
      }, { timeout: 10_000, interval: 250 })
      expect(await page.locator('#offer').innerText()).toContain('H100-SXM-80GB')
      expect(await page.locator('#idle').isHidden()).toBe(true)
      expect(await page.locator('#gpus').innerText()).toContain('Free: offered to renters')

      await mkdir(RESULTS, { recursive: true })
      await page.screenshot({ path: `${RESULTS}/dashboard.png`, fullPage: true })
      await page.setViewportSize({ width: 390, height: 844 })
      await page.screenshot({ path: `${RESULTS}/dashboard-phone.png`, fullPage: true })
      // Phone width: nothing wider than the screen.
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390)

      // A provider with nothing leased says why: no price for its class, no matcher, not reachable.
      const idleProber = new StandInProber(2)
      idleProber.gpus = idleProber.gpus.map((g, i) => simulatedGpu(i, { class: 'L4-24GB', name: 'NVIDIA L4' }))
      const idle = await startProvider({ prober: idleProber })
      try {
        const idlePage = await context.newPage()
        await idlePage.goto(`${idle.provider.apiUrl() as string}/?token=${idle.provider.apiToken}`)
        await idlePage.locator('#idle-reasons li').first().waitFor()
        const reasons = await idlePage.locator('#idle-reasons').innerText()
        expect(reasons).toContain('no price for class L4-24GB')
        expect(reasons).toContain('Not connected to any matcher')
        expect(reasons).toContain('Not reachable from the internet')
        expect(reasons.split('no price for class L4-24GB')).toHaveLength(2) // said once
        expect(await idlePage.locator('#gpus').innerText()).toContain('Free, but not in the offer')
        expect(await idlePage.locator('#no-leases').isVisible()).toBe(true)
        await idlePage.screenshot({ path: `${RESULTS}/dashboard-idle.png`, fullPage: true })
      } finally {
        await idle.stop()
      }

      // Another browser without the cookie is refused.
      const stranger = await (await browser.newContext()).newPage()
      const refused = await stranger.goto(`${base}/`)
      expect(refused?.status()).toBe(401)

      expect(problems).toEqual([])
      expect(foreign).toEqual([])
    } finally {
      await browser?.close()
    }
  }, 60_000)

  it('serves /metrics in the Prometheus text format: GPUs by state, per-GPU readings, leases, GPU-seconds, money, vouchers; no unbounded label', async () => {
    const families = await vi.waitFor(async () => {
      const res = await get('/metrics', { authorization: `Bearer ${token}` })
      expect(res.headers.get('content-type')).toContain('text/plain')
      const parsed = parsePrometheusTextFormat(await res.text())
      const vouchers = parsed.find((f) => f.name === 'gpumesh_provider_vouchers_total')
      expect(Number(vouchers?.metrics[0]?.value)).toBeGreaterThan(0)
      return parsed
    }, { timeout: 10_000, interval: 200 })
    const family = (name: string, type: PrometheusFamily['type']): PrometheusFamily => {
      const found = families.find((f) => f.name === name)
      expect(found, name).toBeDefined()
      expect(found?.type).toBe(type)
      return found as PrometheusFamily
    }
    const value = (f: PrometheusFamily, labels: Record<string, string> = {}): number => {
      const sample = f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
      expect(sample, `${f.name} ${JSON.stringify(labels)}`).toBeDefined()
      return Number(sample?.value)
    }

    const gpus = family('gpumesh_provider_gpus', 'GAUGE')
    expect(value(gpus, { state: 'leased', class: 'H100-SXM-80GB', simulated: 'true' })).toBe(1)
    expect(value(gpus, { state: 'free' })).toBe(2)
    expect(value(gpus, { state: 'unhealthy' })).toBe(1)

    const leasedIndex = String(daemon.provider.inventory.gpus().find((g) => g.state === 'leased')?.index)
    const utilisation = family('gpumesh_provider_gpu_utilization_percent', 'GAUGE')
    expect(utilisation.metrics.map((m) => m.labels?.gpu).sort()).toEqual(['0', '1', '2', '3'])
    expect(value(utilisation, { gpu: leasedIndex })).toBeGreaterThan(50)
    expect(value(family('gpumesh_provider_gpu_temperature_celsius', 'GAUGE'), { gpu: '3' })).toBe(97)
    expect(value(family('gpumesh_provider_gpu_power_watts', 'GAUGE'), { gpu: '1' })).toBe(110)
    expect(value(family('gpumesh_provider_gpu_memory_used_bytes', 'GAUGE'), { gpu: '2' })).toBe(1024 * 1024 * 1024)

    expect(value(family('gpumesh_provider_leases', 'GAUGE'), { state: 'running' })).toBe(1)
    expect(value(family('gpumesh_provider_leases_active', 'GAUGE'), { state: 'running' })).toBe(1)
    expect(value(family('gpumesh_provider_proposals_total', 'COUNTER'), { outcome: 'accepted' })).toBe(1)
    // GPU-seconds and money agree with the ledger (which may have moved on a little since the scrape).
    const periods = daemon.provider.ledger.usagePeriods(leaseId)
    const gpuSeconds = value(family('gpumesh_provider_gpu_seconds_total', 'COUNTER'))
    expect(gpuSeconds).toBeGreaterThan(0)
    expect(gpuSeconds).toBeLessThanOrEqual(Number(periods.reduce((sum, p) => sum + p.gpuMs, 0n)) / 1000)
    const earnings = family('gpumesh_provider_earnings_base_units', 'GAUGE')
    const accrued = value(earnings, { kind: 'accrued' })
    expect(accrued).toBeGreaterThan(0)
    expect(BigInt(accrued)).toBeLessThanOrEqual(periods.at(-1)?.cumulativeAmount as bigint)
    expect(earnings.metrics.map((m) => m.labels?.kind).sort()).toEqual(['accrued', 'exported', 'outstanding', 'redeemed', 'unvouchered', 'vouchered'])
    family('gpumesh_provider_process_resident_memory_bytes', 'GAUGE')

    // Bounded labels: no lease id, order id or peer id anywhere.
    const labelValues = families.flatMap((f) => f.metrics.flatMap((m) => Object.values(m.labels ?? {})))
    expect(labelValues.length).toBeGreaterThan(10)
    for (const v of labelValues) {
      expect(v).not.toMatch(/^0x[0-9a-fA-F]{64}$/)
      expect(v).not.toMatch(/^12D3Koo/)
    }
  })
})
