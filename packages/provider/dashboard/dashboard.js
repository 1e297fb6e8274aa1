// The provider's dashboard: reads the daemon's JSON endpoints (the same ones `gpumesh provider status`
// reads) every two seconds and draws them. No library, no external request; every value from the
// daemon goes into the page as text, never as markup.
'use strict'

const POLL_MS = 2000
const SVG = 'http://www.w3.org/2000/svg'
let decimals = 6
let leasesAt = 0
let leases = []

function el (tag, attrs, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue
    if (k === 'text') node.textContent = String(v)
    else node.setAttribute(k, String(v))
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c)
  return node
}

/** A bigint decimal string of base units as token units: 1234567 with 6 decimals is "1.234567". */
function money (base, places = decimals) {
  let v = BigInt(base)
  const negative = v < 0n
  if (negative) v = -v
  const unit = 10n ** BigInt(places)
  const whole = v / unit
  let frac = (v % unit).toString().padStart(places, '0').replace(/0+$/, '')
  if (frac.length < 2) frac = frac.padEnd(Math.min(2, places), '0')
  return (negative ? '-' : '') + whole.toLocaleString('en-US') + (frac.length > 0 ? '.' + frac : '')
}

function short (id) {
  return id.length > 14 ? id.slice(0, 8) + '…' + id.slice(-4) : id
}

function duration (ms) {
  const s = Math.floor(ms / 1000)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  return (h > 0 ? h + 'h ' : '') + (h > 0 || m > 0 ? m + 'm ' : '') + sec + 's'
}

function ago (at) {
  return duration(Math.max(0, Date.now() - at)) + ' ago'
}

function fixed (v, unit, digits = 0) {
  return v === null || v === undefined ? '—' : Number(v).toFixed(digits) + unit
}

/** A line chart of `values` (numbers or null) on an SVG: own code, scaled to [0, max]. */
function chart (label, series, max) {
  const svg = document.createElementNS(SVG, 'svg')
  svg.setAttribute('viewBox', '0 0 100 40')
  svg.setAttribute('preserveAspectRatio', 'none')
  svg.setAttribute('role', 'img')
  svg.setAttribute('aria-label', label)
  const top = Math.max(max ?? 0, ...series.flat().filter((v) => v !== null)) || 1
  series.forEach((values, i) => {
    const pts = []
    values.forEach((v, j) => {
      if (v === null) return
      const x = values.length === 1 ? 100 : (j / (values.length - 1)) * 100
      pts.push(x.toFixed(2) + ',' + (38 - (v / top) * 36).toFixed(2))
    })
    if (pts.length === 1) pts.unshift('0,' + pts[0].split(',')[1])
    const line = document.createElementNS(SVG, 'polyline')
    line.setAttribute('points', pts.join(' '))
    if (i > 0) line.setAttribute('class', 'second')
    svg.append(line)
  })
  return el('div', { class: 'chart' }, el('span', { text: label }), svg)
}

async function get (path) {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' })
  if (res.status === 401) throw new Error('The dashboard lost its token: open the link `gpumesh provider start` printed again.')
  if (!res.ok) throw new Error(path + ' answered ' + res.status)
  return await res.json()
}

let offered = new Set()

function why (gpu) {
  if (gpu.state === 'leased' || gpu.state === 'reserved') return (gpu.state === 'leased' ? 'Running a job' : 'Reserved for a lease starting') + (gpu.leaseId ? ' (lease ' + short(gpu.leaseId) + ')' : '')
  if (gpu.state === 'free') return offered.has(gpu.class) ? 'Free: offered to renters' : 'Free, but not in the offer: see why nothing is leased'
  if (gpu.problems.length > 0) return gpu.problems.join('; ')
  if (gpu.state === 'busy') return 'Busy with a process that is not a gpumesh job'
  return gpu.state
}

function renderGpus (status, history) {
  const byUuid = new Map(history.gpus.map((h) => [h.uuid, h.points]))
  const box = document.getElementById('gpus')
  box.replaceChildren()
  if (status.gpus.length === 0) box.append(el('p', { class: 'muted', text: 'No GPU found by the probe.' }))
  for (const gpu of status.gpus) {
    const points = byUuid.get(gpu.uuid) ?? []
    const now = points.at(-1) ?? {}
    const memTotal = gpu.memoryMiB
    box.append(el('article', { class: 'card gpu', 'data-uuid': gpu.uuid },
      el('h3', { text: 'GPU ' + (gpu.index ?? '?') + ' · ' + gpu.name + (gpu.simulated ? ' (simulated)' : '') }),
      el('span', { class: 'badge state-' + gpu.state, text: gpu.state }),
      el('p', { class: 'why', text: why(gpu) }),
      el('dl', { class: 'figures' },
        el('div', {}, el('dt', { text: 'Utilisation' }), el('dd', { text: fixed(now.utilizationPercent, '%') })),
        el('div', {}, el('dt', { text: 'Temperature' }), el('dd', { text: fixed(now.temperatureC, ' °C') })),
        el('div', {}, el('dt', { text: 'Power' }), el('dd', { text: fixed(now.powerDrawW, ' W') })),
        el('div', {}, el('dt', { text: 'Memory' }), el('dd', { text: now.memoryUsedMiB === null || now.memoryUsedMiB === undefined ? '—' : (now.memoryUsedMiB / 1024).toFixed(1) + (memTotal ? ' / ' + (memTotal / 1024).toFixed(0) : '') + ' GiB' }))),
      el('div', { class: 'charts' },
        chart('Utilisation %', [points.map((p) => p.utilizationPercent)], 100),
        chart('Temperature °C', [points.map((p) => p.temperatureC)], 90),
        chart('Power W', [points.map((p) => p.powerDrawW)]),
        chart('Memory MiB', [points.map((p) => p.memoryUsedMiB)], memTotal))))
  }
}

function renderLeases () {
  const box = document.getElementById('leases')
  document.getElementById('no-leases').hidden = leases.length > 0
  box.replaceChildren()
  const since = Date.now() - leasesAt
  for (const lease of leases) {
    const elapsed = lease.startedAt === null ? 0 : lease.elapsedMs + since
    box.append(el('article', { class: 'card lease', 'data-lease': lease.leaseId },
      el('h3', { class: 'mono', text: 'Lease ' + short(lease.leaseId) }),
      el('span', { class: 'badge state-leased', text: lease.state }),
      el('p', { class: 'cost', 'data-base-units': lease.costSoFar, text: money(lease.costSoFar) }),
      el('p', { class: 'why', text: 'cost so far' + (lease.state === 'running' ? ', rising' : ' (job not started)') }),
      el('dl', { class: 'figures' },
        el('div', {}, el('dt', { text: 'Elapsed' }), el('dd', { class: 'elapsed', text: lease.startedAt === null ? 'not started' : duration(elapsed) })),
        el('div', {}, el('dt', { text: 'GPUs' }), el('dd', { text: lease.gpus.length + ' × ' + lease.gpuClass })),
        el('div', {}, el('dt', { text: 'Price per hour' }), el('dd', { text: money(lease.pricePerHour) })),
        el('div', {}, el('dt', { text: 'Vouchered' }), el('dd', { text: money(lease.vouchered) })),
        el('div', {}, el('dt', { text: 'Usage periods' }), el('dd', { text: lease.usagePeriods })),
        el('div', {}, el('dt', { text: 'Renter' }), el('dd', { class: 'mono', text: short(lease.renter) })))))
  }
}

function renderEarnings (status, history) {
  const box = document.getElementById('earnings')
  box.replaceChildren()
  if (status.earnings.length === 0) box.append(el('p', { class: 'muted', text: 'Nothing earned yet.' }))
  for (const e of status.earnings) {
    const points = history.tokens.find((t) => t.token.toLowerCase() === e.token.toLowerCase())?.points ?? []
    box.append(el('article', { class: 'card earnings', 'data-token': e.token },
      el('h3', {}, 'Token ', el('span', { class: 'mono', text: short(e.token) })),
      el('dl', { class: 'figures' },
        el('div', {}, el('dt', { text: 'Accrued' }), el('dd', { class: 'accrued', text: money(e.accrued) })),
        el('div', {}, el('dt', { text: 'Vouchered' }), el('dd', { class: 'vouchered', text: money(e.vouchered) })),
        el('div', {}, el('dt', { text: 'Redeemed' }), el('dd', { class: 'redeemed', text: money(e.redeemed) })),
        el('div', {}, el('dt', { text: 'Exported (off-chain)' }), el('dd', { text: money(e.exported) })),
        el('div', {}, el('dt', { text: 'Outstanding' }), el('dd', { class: 'outstanding', text: money(e.outstanding) })),
        el('div', {}, el('dt', { text: 'Leases' }), el('dd', { text: e.leases }))),
      el('div', { class: 'charts' },
        chart('Accrued (blue) and redeemed (green), last hour', [points.map((p) => Number(BigInt(p.accrued))), points.map((p) => Number(BigInt(p.redeemed)))]))))
  }
  const r = status.settlement.lastRedemption
  if (r !== null) box.append(el('article', { class: 'card' }, el('h3', { text: 'Last redemption' }), el('p', { text: money(r.paid) + ' for ' + r.vouchers + ' voucher(s)' }), ...r.txHashes.map((h) => el('p', { class: 'mono', text: h }))))
}

function renderOffer (status) {
  const box = document.getElementById('offer')
  const o = status.offer
  box.replaceChildren()
  if (o.gpus.length > 0) {
    const table = el('table', {}, el('tr', {}, el('th', { text: 'Class' }), el('th', { text: 'Free / total' }), el('th', { text: 'Price per GPU-hour' })))
    for (const g of o.gpus) table.append(el('tr', {}, el('td', { text: g.class + (g.simulated ? ' (simulated)' : '') }), el('td', { text: g.countFree + ' / ' + g.countTotal }), el('td', { text: money(g.pricePerGpuHour, o.tokenDecimals) })))
    box.append(table)
  }
  box.append(el('p', { class: 'muted', text: o.reason !== null ? 'No offer out: ' + o.reason : 'Offer #' + o.sequence + ' published ' + ago(o.publishedAt) + (o.expiresAt ? ', expires in ' + duration(o.expiresAt - Date.now()) : '') }))
  for (const note of o.notes) box.append(el('p', { class: 'why', text: note }))
}

/** A multiaddr on loopback, a private IPv4 range, link-local or unique-local IPv6. */
function privateAddress (addr) {
  const m = /^\/(ip4|ip6)\/([^/]+)/.exec(addr)
  if (m === null) return false
  const ip = m[2]
  if (m[1] === 'ip4') return /^(127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.)/.test(ip)
  return ip === '::1' || /^f[cd]|^fe80/i.test(ip)
}

function idleReasons (status) {
  if (status.activeLeases.length > 0) return []
  const reasons = []
  if (status.connectedPeers.length === 0) reasons.push('Not connected to any matcher or peer: nobody sees this provider\'s offer. Set network.bootstrap to a matcher\'s address (or turn on network.mdns on a LAN).')
  if (status.addresses.length > 0 && status.addresses.every(privateAddress)) reasons.push('Not reachable from the internet: every address this provider listens on or announces is private (' + status.addresses.map((a) => a.split('/p2p/')[0]).join(', ') + '). Renters outside this network cannot connect: set network.announce to a public address and forward its port.')
  if (status.offer.reason !== null) reasons.push('No offer out: ' + status.offer.reason)
  for (const note of status.offer.notes) if (status.offer.reason === null || !status.offer.reason.includes(note)) reasons.push(note)
  if (status.gpus.length > 0 && status.gpus.every((g) => g.state !== 'free')) reasons.push('No GPU is free: ' + status.gpus.map((g) => 'GPU ' + (g.index ?? '?') + ' ' + why(g)).join('; '))
  for (const p of status.runner.problems) reasons.push(p)
  if (reasons.length === 0) reasons.push('The offer is out and nobody has leased yet: renters choose by price; compare your prices with the market (`gpumesh market offers`).')
  return reasons
}

function renderStatus (status) {
  decimals = status.offer.tokenDecimals
  offered = new Set(status.offer.reason === null ? status.offer.gpus.map((g) => g.class) : [])
  document.getElementById('identity').textContent = 'peer ' + (status.peerId ? short(status.peerId) : '—') + ' · paid to ' + short(status.paymentAddress) + ' · ' + status.settlement.mode + ' settlement' + (status.fleet ? ' · fleet of ' + short(status.fleet.operator) : '')
  const conn = document.getElementById('connection')
  conn.textContent = status.running ? status.connectedPeers.length + ' peer(s) connected' : 'stopped'
  conn.className = 'badge ' + (status.running && status.connectedPeers.length > 0 ? 'ok' : 'bad')
  const reasons = idleReasons(status)
  document.getElementById('idle').hidden = reasons.length === 0
  document.getElementById('idle-reasons').replaceChildren(...reasons.map((r) => el('li', { text: r })))
  const errors = [
    ...status.recentErrors.map((e) => ({ at: e.at, text: e.message })),
    ...status.probeErrors.map((e) => ({ at: null, text: e.source + ': ' + e.message })),
    ...status.runner.problems.map((p) => ({ at: status.runner.checkedAt, text: p }))
  ]
  document.getElementById('errors').replaceChildren(...(errors.length === 0
    ? [el('li', { class: 'muted', text: 'None.' })]
    : errors.reverse().map((e) => el('li', { text: (e.at ? new Date(e.at).toLocaleTimeString() + ' — ' : '') + e.text }))))
}

async function refresh () {
  try {
    const [status, gpus, active, earnings] = await Promise.all([get('/status'), get('/gpus/history'), get('/leases/active'), get('/earnings/history')])
    renderStatus(status)
    renderGpus(status, gpus)
    leases = active.leases
    leasesAt = Date.now()
    renderLeases()
    renderEarnings(status, earnings)
    renderOffer(status)
    document.getElementById('updated').textContent = new Date().toLocaleTimeString()
  } catch (err) {
    document.getElementById('updated').textContent = 'failed: ' + err.message
  }
}

refresh()
setInterval(refresh, POLL_MS)
