import { randomBytes } from 'node:crypto'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { Ledger } from '@gpumesh/ledger'
import { RepeatingTask, createNode, validateTopic, type CreateNodeOptions, type GpumeshNode } from '@gpumesh/net'
import { OFFERS_TOPIC, OFFER_GOSSIP_RATE_LIMIT, judgeOfferGossip, marketDomain, paymentKeyAddress, signPeerBinding } from '@gpumesh/protocol'
import type { LeaseRecord, TokenEarnings } from '@gpumesh/ledger'
import type { SettleReport } from '@gpumesh/settlement'
import type { Address, FleetMembership, PaymentKey, PeerBinding } from '@gpumesh/protocol'
import type { Logger } from 'pino'
import { ApiServer, toJson } from './api.js'
import { dashboardRoutes } from './dashboard.js'
import { activeLeaseViews, leaseSummary, type LeaseSummary } from './lease-views.js'
import { DashboardHistory, historyCapacity, type GpuReadingNow } from './history.js'
import { systemClock, type Clock } from '@gpumesh/protocol'
import { ARTIFACT_CLEANUP_INTERVAL_MS, EXPIRY_SWEEP_INTERVAL_MS, HISTORY_WINDOW_MS, JOBS_DIR, LEDGER_FILE, MAX_RECENT_ERRORS, RUNNER_CHECK_INTERVAL_MS, SEEN_ORDERS_PRUNE_INTERVAL_MS } from './constants.js'
import { Inventory, type InventoryGpu, type InventoryProber } from './inventory.js'
import { JobService } from './job-service.js'
import { DockerRunner, JobManager, ProcessRunner, checkDockerReadiness, simulatedGpuSampler, type DockerReadiness, type JobRunner, type SampleGpus } from './jobs/index.js'
import { LeaseHandler, RECORDED_REJECTION_CODES, type LeaseHandlerStats } from './lease-handler.js'
import { ProviderMetrics } from './metrics.js'
import { OfferPublisher, type OfferState } from './offer-publisher.js'
import { lockDataDir, type DataDirLock } from './data-dir-lock.js'
import { isOperatorError } from './errors.js'
import { fleetStatusOf, fleetVouchersOf, loadFleetMembership } from './fleet.js'
import { FleetService } from './fleet-service.js'
import { GpuProber, GpuSampler, resolveProbeExecutables, type ProbeIssue } from './probe/index.js'
import { prepareJobAccount } from './job-account.js'
import { SettlementService } from './settlement-service.js'
import { settlementEscrow, type ProviderConfig } from './config.js'

/** The daemon's two keys: the libp2p peer key and the payment key (a Wallet, SigningKey or 0x hex). */
export interface ProviderIdentity {
  peerKey: NonNullable<CreateNodeOptions['privateKey']>
  paymentKey: PaymentKey
}

export interface ProviderComponents {
  identity: ProviderIdentity
  /** pino; each part logs through a child logger (`module`). */
  logger: Logger
  /** Default: the system clock. */
  clock?: Clock
  /** Default: a `GpuProber` built from `config.probe`. Tests pass a stand-in. */
  prober?: InventoryProber
  /** Environment for finding GPU tools (`GPUMESH_NVIDIA_SMI` ...); default none. */
  env?: Record<string, string | undefined>
  /** Extra libp2p options (e.g. `loopback: true` for tests and benches). */
  nodeOptions?: Partial<CreateNodeOptions>
  /** The local API token; default 32 random bytes. */
  apiToken?: string
  /** The daemon's uid, for the process runner's account checks; default os.userInfo().uid. */
  daemonUid?: number
}

export interface RecentError {
  at: number
  message: string
}

/** What `gpumesh provider status` shows. */
export interface ProviderStatus {
  running: boolean
  peerId: string | null
  paymentAddress: Address
  addresses: string[]
  connectedPeers: string[]
  /** The fleet this node belongs to (offers.fleetMembership), or null. */
  fleet: { operator: Address, expiresAt: number } | null
  gpus: InventoryGpu[]
  offer: {
    sequence: number | null
    publishedAt: number | null
    expiresAt: number | null
    gpus: Array<{ class: string, countFree: number, countTotal: number, pricePerGpuHour: bigint, simulated: boolean }>
    bytes: number | null
    /** Decimals of the pricing token, to show prices in token units. */
    tokenDecimals: number
    /** Why no offer is out, or null. */
    reason: string | null
    notes: string[]
  }
  activeLeases: LeaseSummary[]
  /** How this provider is paid, and what its newest redemption did. */
  settlement: {
    mode: 'offchain' | 'onchain'
    /** The escrow contract (zero off-chain). */
    escrow: Address
    chainId: bigint
    lastRedemption: { txHashes: string[], paid: bigint, vouchers: number } | null
  }
  /** Per token: accrued, vouchered, exported, redeemed, outstanding, and who owes it. */
  earnings: TokenEarnings[]
  leaseStats: LeaseHandlerStats
  /** The job runner and what its checks found (the docker runner: engine version, GPU runtimes). */
  runner: RunnerStatus
  probeErrors: ProbeIssue[]
  recentErrors: RecentError[]
}

export interface RunnerStatus {
  kind: 'none' | 'process' | 'docker'
  /** The docker engine's version, once checked. */
  engineVersion: string | null
  /** Why jobs cannot run here (all of them, or one vendor's GPUs): those GPUs are left out of the offer. */
  problems: string[]
  checkedAt: number | null
}

export interface Provider {
  start: () => Promise<void>
  stop: () => Promise<void>
  readonly running: boolean
  /** Null before the first start. */
  readonly peerId: string | null
  readonly paymentAddress: Address
  readonly apiToken: string
  /** Listen (or announce) addresses with /p2p/<peer id>; empty before start. */
  addresses: () => string[]
  /** `http://127.0.0.1:<port>`, or null when the API is off or not started. */
  apiUrl: () => string | null
  status: () => ProviderStatus
  readonly ledger: Ledger
  readonly inventory: Inventory
  /** Present while started. */
  readonly node: GpumeshNode | null
  readonly leases: LeaseHandler | null
  readonly publisher: OfferPublisher | null
  /** The job side: runners, meters, vouchers (always present; runs nothing with `runner.kind: none`). */
  readonly jobs: JobManager
}

/**
 * The composition root of the provider daemon. Parts are built and started in dependency order:
 * ledger (and reconciliation) → prober and inventory → libp2p node → lease handler → offer publisher →
 * expiry sweeper → local API. If a part fails to start, what already started is stopped and the error
 * rethrown. `stop()` runs in the order written in it. Start and stop are idempotent.
 */
export function createProvider (config: ProviderConfig, components: ProviderComponents): Provider {
  const clock = components.clock ?? systemClock
  const logger = components.logger
  const log = logger.child({ module: 'provider' })
  const paymentKey = components.identity.paymentKey
  const paymentAddress = paymentKeyAddress(paymentKey)
  const apiToken = components.apiToken ?? randomBytes(32).toString('hex')
  const recentErrors: RecentError[] = []
  const noteError = (message: string): void => {
    recentErrors.push({ at: clock.now(), message })
    if (recentErrors.length > MAX_RECENT_ERRORS) recentErrors.shift()
  }

  const ledger = new Ledger(join(config.dataDir, LEDGER_FILE), { logger: logger.child({ module: 'ledger' }), clock })
  const prober = components.prober ?? new GpuProber({
    ...resolveProbeExecutables(config.probe, components.env ?? {}),
    timeoutMs: config.probe.timeoutMs,
    maxTemperatureC: config.probe.maxTemperatureC,
    allowUnknownHealth: config.probe.allowUnknownHealth,
    simulate: config.probe.simulate.map((s) => ({ model: s.model, count: s.count })),
    dataDir: config.dataDir,
    logger: logger.child({ module: 'probe' })
  })
  const inventory = new Inventory({ intervalMs: config.probe.intervalSec * 1000 }, { ledger, prober, logger: logger.child({ module: 'inventory' }) })

  const runner: JobRunner | null = config.runner.kind === 'process'
    ? new ProcessRunner({ stopGraceMs: config.runner.stopGraceSec * 1000, ...(components.env?.PATH != null ? { path: components.env.PATH } : {}) })
    : config.runner.kind === 'docker'
      ? new DockerRunner({
        binary: config.runner.docker.binary,
        memory: config.runner.docker.memory,
        cpus: config.runner.docker.cpus,
        network: config.runner.docker.network,
        stopGraceMs: config.runner.stopGraceSec * 1000,
        allowImages: config.runner.docker.allowImages.length > 0 ? config.runner.docker.allowImages : null,
        pull: config.runner.docker.pullTimeoutSec > 0 ? { timeoutMs: config.runner.docker.pullTimeoutSec * 1000, maxBytes: config.runner.docker.pullMaxBytes } : null,
        socketPath: config.runner.docker.socket,
        pciBusIdOf: (uuid) => inventory.gpus().find((g) => g.uuid === uuid)?.pciBusId ?? null,
        ...(components.env?.PATH != null ? { path: components.env.PATH } : {})
      })
      : null
  const settlement = new SettlementService(config, { ledger, paymentKey, logger: logger.child({ module: 'settlement' }), onError: noteError })
  const escrowGuard = settlement.guard
  const jobsDir = config.runner.process.jobsDir ?? join(config.dataDir, JOBS_DIR)
  const sampleGpus = gpuSampler(config, components, inventory, logger)
  const jobs = new JobManager({
    ledger,
    runner,
    clock,
    sampleGpus,
    paymentKey,
    escrowCheck: escrowGuard === null ? null : async (lease) => await escrowGuard.check(lease.renter, lease.token, 0n),
    logger: logger.child({ module: 'jobs' })
  }, {
    jobsDir,
    stopGraceMs: config.runner.stopGraceSec * 1000,
    maxBundleBytes: config.runner.maxBundleBytes,
    artifactRetentionSec: config.runner.artifactRetentionSec
  })
  // The docker runner's checks (engine, NVIDIA runtime, /dev/kfd and render nodes): at start, then
  // periodically; GPUs the runner cannot give to a container are left out of the offer, said why.
  let runnerCheck: (DockerReadiness & { at: number }) | null = null
  const runnerLog = logger.child({ module: 'runner' })
  const checkRunner = async (): Promise<void> => {
    if (!(runner instanceof DockerRunner)) return
    const gpus = inventory.gpus().map((g) => ({ uuid: g.uuid, vendor: g.simulated || g.vendor === 'unknown' ? 'simulated' as const : g.vendor, pciBusId: g.pciBusId }))
    const result = await checkDockerReadiness(runner.cli, gpus)
    const problems = runnerProblemList(result)
    const changed = runnerCheck === null || runnerProblemList(runnerCheck).join('\n') !== problems.join('\n')
    runnerCheck = { ...result, at: clock.now() }
    if (!changed) return
    if (problems.length === 0) runnerLog.info({ engineVersion: result.serverVersion }, 'docker engine ready')
    for (const problem of problems) runnerLog.error({ engineVersion: result.serverVersion }, problem)
    publisher?.requestPublish()
  }
  const runnerChecker = new RepeatingTask({ name: 'runner-check', intervalMs: RUNNER_CHECK_INTERVAL_MS, logger: log }, checkRunner)
  const artifactCleaner = new RepeatingTask({ name: 'artifact-cleanup', intervalMs: ARTIFACT_CLEANUP_INTERVAL_MS, logger: log }, async () => {
    await jobs.cleanupArtifacts()
  })

  let node: GpumeshNode | null = null
  let jobService: JobService | null = null
  let fleetService: FleetService | null = null
  let startedAt: number | null = null
  let leases: LeaseHandler | null = null
  let publisher: OfferPublisher | null = null
  let dataDirLock: DataDirLock | null = null
  let fleet: FleetMembership | null = null
  let api: ApiServer | null = null
  let running = false
  let starting: Promise<void> | null = null
  let peerId: string | null = null

  const addresses = (): string[] => {
    if (node == null) return []
    return node.getMultiaddrs().map((a) => a.toString())
  }

  const sweeper = new RepeatingTask({ name: 'lease-expiry', intervalMs: EXPIRY_SWEEP_INTERVAL_MS, logger: log }, () => {
    const expired = jobs.expireOverdue(clock.now())
    if (expired.length > 0) log.info({ leases: expired }, 'accepted leases expired: no job started before the deadline; GPUs freed')
  })
  const pruner = new RepeatingTask({ name: 'seen-orders-prune', intervalMs: SEEN_ORDERS_PRUNE_INTERVAL_MS, logger: log }, () => {
    ledger.pruneSeenOrders(clock.now())
  })
  const onCapacityChange = (): void => { publisher?.requestPublish() }

  // The dashboard's charts: every GPU's readings and the earnings, on the probe cadence, the last hour.
  const history = new DashboardHistory(historyCapacity(HISTORY_WINDOW_MS, config.probe.intervalSec * 1000))
  let latestReadings: GpuReadingNow[] = []
  const recordHistory = async (): Promise<void> => {
    if (!ledger.isOpen) return
    latestReadings = await gpuReadings(inventory, sampleGpus)
    const now = clock.now()
    history.recordGpus(now, latestReadings)
    history.recordEarnings(now, ledger.earnings())
  }
  const historyRecorder = new RepeatingTask({ name: 'history', intervalMs: config.probe.intervalSec * 1000, runAtStart: true, logger: log }, recordHistory)

  const status = (): ProviderStatus => {
    const offerState: OfferState | null = publisher?.state ?? null
    const offer = offerState?.offer ?? null
    return {
      running,
      peerId,
      paymentAddress,
      addresses: addresses(),
      connectedPeers: node == null ? [] : node.getPeers().map((p) => p.toString()),
      fleet: fleet == null ? null : { operator: fleet.operator, expiresAt: fleet.expiresAt },
      gpus: ledger.isOpen ? inventory.gpus() : [],
      offer: {
        sequence: offer?.sequence ?? null,
        publishedAt: offerState?.publishedAt ?? null,
        expiresAt: offer?.expiresAt ?? null,
        gpus: offer?.gpus.map((g) => ({ class: g.class, countFree: g.countFree, countTotal: g.countTotal, pricePerGpuHour: g.pricePerGpuHour, simulated: g.simulated })) ?? [],
        bytes: offerState?.bytes ?? null,
        tokenDecimals: config.pricing.tokenDecimals,
        reason: offerState == null ? 'not started' : offerState.reason,
        notes: offerState?.notes ?? []
      },
      activeLeases: ledger.isOpen ? ledger.activeLeases().map(leaseSummary) : [],
      settlement: {
        mode: config.settlement.mode,
        escrow: settlementEscrow(config),
        chainId: BigInt(config.pricing.chainId),
        lastRedemption: lastRedemption(settlement.lastReport)
      },
      earnings: ledger.isOpen ? ledger.earnings() : [],
      leaseStats: proposalStats(ledger, leases?.stats ?? null),
      runner: {
        kind: config.runner.kind,
        engineVersion: runnerCheck?.serverVersion ?? null,
        problems: runnerCheck === null ? [] : runnerProblemList(runnerCheck),
        checkedAt: runnerCheck?.at ?? null
      },
      probeErrors: inventory.probeErrors,
      recentErrors: [...recentErrors]
    }
  }
  const metrics = new ProviderMetrics(status, {
    gpuReadings: () => latestReadings,
    activity: () => ledger.isOpen ? ledger.activityCounts() : null
  })

  const stop = async (): Promise<void> => {
    if (starting != null) await starting.catch(() => {})
    // Every step runs even when one before it throws: the ledger is closed and the data directory
    // released whatever happened above them. The first failure is rethrown at the end.
    const failures: unknown[] = []
    const step = async (part: string, work: () => unknown): Promise<void> => {
      try {
        await work()
      } catch (err) {
        failures.push(err)
        log.error({ err, part }, 'a part failed to stop; stopping the rest')
      }
    }
    // 1. Stop taking new leases (and answering the fleet operator).
    await step('fleet', async () => { const f = fleetService; fleetService = null; await f?.stop() })
    await step('leases', async () => { await leases?.stop() })
    // 2. Stop taking job requests, then let running jobs checkpoint and stop (SIGTERM, grace, SIGKILL).
    await step('job-protocol', async () => { const s = jobService; jobService = null; await s?.stop() })
    await step('jobs', async () => { await jobs.stop() })
    await step('artifact-cleanup', async () => { await artifactCleaner.stop() })
    await step('settlement', async () => { await settlement.stop() })
    await step('runner-check', async () => { await runnerChecker.stop() })
    await step('history', async () => { await historyRecorder.stop() })
    // 3. Stop announcing and background work.
    await step('offers', async () => { await publisher?.stop() })
    await step('lease-expiry', async () => { await sweeper.stop() })
    await step('seen-orders-prune', async () => { await pruner.stop() })
    await step('inventory', async () => { await inventory.stop() })
    // 4. Local API, then libp2p.
    await step('api', async () => { await api?.stop() })
    await step('libp2p', async () => {
      if (node == null) return
      inventory.off('change', onCapacityChange)
      const n = node
      node = null
      await n.stop()
    })
    // 5. The ledger last: everything above may still write to it; then the data directory is free.
    await step('ledger', () => { ledger.close() })
    await step('data-dir-lock', async () => { const lock = dataDirLock; dataDirLock = null; await lock?.release() })
    if (running) log.info('provider stopped')
    running = false
    if (failures.length > 0) throw failures[0]
  }

  const doStart = async (): Promise<void> => {
    try {
      dataDirLock = await lockDataDir(config.dataDir)
      // Before any job is started or re-attached: who process-runner jobs run as, or a refusal.
      const account = await prepareJobAccount(config, { daemonUid: components.daemonUid ?? userInfo().uid, jobsDir })
      if (account !== null && runner instanceof ProcessRunner) {
        runner.useAccount(account)
        log.info({ user: account.name, uid: account.uid, gid: account.gid, jobsDir }, 'process-runner jobs run as another user')
      } else if (runner instanceof ProcessRunner) {
        log.warn('process-runner jobs run as the daemon\'s own user (runner.process.sameUser): they can read its keys, API token and environment')
      }
      ledger.open()
      const expired = jobs.expireOverdue(clock.now())
      if (expired.length > 0) log.info({ leases: expired }, 'leases past their start deadline while the daemon was down expired')
      jobs.start()
      await jobs.recover()

      await inventory.start()
      await checkRunner()

      node = await createNode({
        privateKey: components.identity.peerKey,
        listen: [...config.network.listen],
        announce: [...config.network.announce],
        bootstrap: [...config.network.bootstrap],
        mdns: config.network.mdns,
        dht: config.network.dht,
        ...components.nodeOptions
      })
      const id = node.peerId.toString()
      peerId = id
      // In the offers mesh this daemon relays others' offers: only genuine ones (forged or malformed
      // ones are dropped and their sender penalised), so it neither spreads spam nor is blamed for it.
      validateTopic(node, OFFERS_TOPIC, (data, author) => judgeOfferGossip(data, author, clock.now()).judgement, { perAuthor: OFFER_GOSSIP_RATE_LIMIT })
      node.services.pubsub.subscribe(OFFERS_TOPIC)
      const binding: PeerBinding = {
        peerId: id,
        payment: paymentAddress,
        proof: signPeerBinding({ peerId: id, payment: paymentAddress }, paymentKey, marketDomain(BigInt(config.pricing.chainId)))
      }
      fleet = config.offers.fleetMembership == null
        ? null
        : await loadFleetMembership(config.offers.fleetMembership, { dataDir: config.dataDir, peerId: id, payment: paymentAddress, chainId: BigInt(config.pricing.chainId), now: clock.now() })
      if (fleet != null) log.info({ operator: fleet.operator, expiresAt: fleet.expiresAt }, 'member of a fleet')
      const startedNode = node
      leases = new LeaseHandler(config, {
        node: startedNode,
        ledger,
        inventory,
        paymentKey,
        provider: paymentAddress,
        peerId: id,
        addresses,
        clock,
        logger: logger.child({ module: 'leases' }),
        fleet,
        escrowGuard,
        runnerProblem: (gpu) => runnerCheck === null ? null : runnerCheck.engine ?? runnerCheck.vendors[gpu.simulated || gpu.vendor === 'unknown' ? 'simulated' : gpu.vendor] ?? null,
        onError: noteError
      })
      publisher = new OfferPublisher(config, {
        node: startedNode,
        ledger,
        inventory,
        paymentKey,
        peerId: id,
        binding,
        fleet,
        addresses,
        clock,
        logger: logger.child({ module: 'offers' }),
        onError: noteError,
        runnerProblems: () => runnerCheck
      })
      inventory.on('change', onCapacityChange)
      await leases.start()
      jobService = new JobService({
        node: startedNode,
        ledger,
        jobs,
        clock,
        logger: logger.child({ module: 'job-protocol' }),
        onError: noteError
      }, {
        chainId: BigInt(config.pricing.chainId),
        runnerEnabled: runner !== null,
        maxBundleBytes: config.runner.maxBundleBytes,
        jobsDir,
        artifactRetentionSec: config.runner.artifactRetentionSec
      })
      await jobService.start()
      if (fleet != null) {
        // Only the operator of this node's membership may ask for its status and vouchers.
        fleetService = new FleetService({
          node: startedNode,
          clock,
          logger: logger.child({ module: 'fleet' }),
          membership: () => fleet,
          chainId: BigInt(config.pricing.chainId),
          status: () => fleetStatusOf(status(), startedAt),
          vouchers: () => fleetVouchersOf(ledger, { peerId: id, member: paymentAddress, escrow: settlementEscrow(config), chainId: BigInt(config.pricing.chainId) })
        })
        await fleetService.start()
      }
      artifactCleaner.start()
      runnerChecker.start()
      publisher.start()
      settlement.start()
      sweeper.start()
      pruner.start()
      historyRecorder.start()

      if (config.api.enabled) {
        api = new ApiServer({
          host: config.api.host,
          port: config.api.port,
          token: apiToken,
          logger: logger.child({ module: 'api' }),
          routes: {
            '/status': () => ({ contentType: 'application/json', body: toJson(status()) }),
            '/leases': (query) => ({ contentType: 'application/json', body: toJson(listLeases(ledger, query.get('state'))) }),
            '/health': () => ({ contentType: 'application/json', body: toJson({ ok: running }) }),
            '/earnings': (query) => ({ contentType: 'application/json', body: toJson(ledger.earnings(sinceOption(query.get('since')))) }),
            '/metrics': async () => await metrics.render(),
            '/gpus/history': (query) => ({ contentType: 'application/json', body: toJson({ gpus: history.gpus(sinceOption(query.get('since')).since) }) }),
            '/leases/active': () => ({ contentType: 'application/json', body: toJson({ tokenDecimals: config.pricing.tokenDecimals, leases: ledger.isOpen ? activeLeaseViews(ledger, clock.now()) : [] }) }),
            '/earnings/history': (query) => ({ contentType: 'application/json', body: toJson({ tokenDecimals: config.pricing.tokenDecimals, tokens: history.earnings(sinceOption(query.get('since')).since) }) }),
            ...await dashboardRoutes()
          }
        })
        await api.start()
      }
      running = true
      startedAt = clock.now()
      log.info({
        peerId: id,
        paymentAddress,
        addresses: addresses(),
        api: api?.url() ?? null,
        gpus: inventory.gpus().map((g) => ({ uuid: g.uuid, class: g.class, state: g.state, simulated: g.simulated }))
      }, 'provider started')
    } catch (err) {
      // Anything the operator cannot fix from a sentence is logged with its stack.
      // The caller shows an operator's error as its sentence; a log line would say it twice.
      if (isOperatorError(err)) log.debug({ code: (err as { code: string }).code }, `provider failed to start: ${(err as Error).message}`)
      else log.error({ err }, 'provider failed to start; stopping what started')
      starting = null
      await stop().catch((stopErr: unknown) => { log.error({ err: stopErr }, 'stopping after a failed start failed') })
      throw err
    }
  }

  return {
    async start () {
      if (running) return
      if (starting == null) {
        starting = doStart().finally(() => { starting = null })
      }
      await starting
    },
    stop,
    get running () { return running },
    get peerId () { return peerId },
    paymentAddress,
    apiToken,
    addresses,
    apiUrl: () => api?.url() ?? null,
    status,
    ledger,
    inventory,
    get node () { return node },
    get leases () { return leases },
    get publisher () { return publisher },
    jobs
  }
}

/**
 * GPU readings for the meter: one light vendor-tool run per tick shared by all leases (`GpuSampler`);
 * simulated GPUs get synthetic figures. A failed reading is null: billing does not depend on readings.
 */
function gpuSampler (config: ProviderConfig, components: ProviderComponents, inventory: Inventory, logger: Logger): SampleGpus {
  return new GpuSampler({
    ...resolveProbeExecutables(config.probe, components.env ?? {}),
    gpus: () => inventory.gpus(),
    simulated: simulatedGpuSampler(),
    logger: logger.child({ module: 'gpu-sampler' })
  }).sample
}

/**
 * Each GPU's readings now: the last probe's, and for a leased GPU the meter's sampler (live utilisation,
 * memory and power; shared with the meter, so no extra tool run; synthetic for a simulated GPU).
 */
async function gpuReadings (inventory: Inventory, sample: SampleGpus): Promise<GpuReadingNow[]> {
  const probed = inventory.readings()
  const leased = inventory.gpus().filter((g) => g.state === 'leased').map((g) => g.uuid)
  if (leased.length === 0) return probed
  const live = new Map((await sample(leased)).map((r) => [r.uuid, r]))
  return probed.map((r) => {
    const now = live.get(r.uuid)
    if (now === undefined) return r
    return {
      ...r,
      utilizationPercent: now.utilizationPercent ?? r.utilizationPercent,
      memoryUsedMiB: now.memoryUsedMiB ?? r.memoryUsedMiB,
      powerDrawW: now.powerDrawW ?? r.powerDrawW
    }
  })
}

function lastRedemption (report: SettleReport | null): ProviderStatus['settlement']['lastRedemption'] {
  if (report === null) return null
  return {
    txHashes: report.batches.map((b) => b.txHash).filter((h): h is NonNullable<typeof h> => h !== null),
    paid: report.totals.paid,
    vouchers: report.totals.vouchers
  }
}

/** `?since=` as Unix milliseconds; anything else is ignored (everything is counted). */
function sinceOption (since: string | null): { since?: number } {
  const ms = since == null ? NaN : Number(since)
  return Number.isSafeInteger(ms) && ms >= 0 ? { since: ms } : {}
}

/**
 * Proposal counts for status: accepted ones and recorded rejections from the ledger (so they survive a
 * restart); rejections the ledger does not keep (unsigned or malformed proposals) as counted since start.
 */
function proposalStats (ledger: Ledger, live: LeaseHandlerStats | null): LeaseHandlerStats {
  if (!ledger.isOpen) return live ?? { accepted: 0, rejected: {} }
  const counts = ledger.proposalCounts()
  const rejected: LeaseHandlerStats['rejected'] = counts.rejected as LeaseHandlerStats['rejected']
  for (const [code, n] of Object.entries(live?.rejected ?? {})) {
    if (!RECORDED_REJECTION_CODES.has(code as keyof LeaseHandlerStats['rejected'])) rejected[code as keyof LeaseHandlerStats['rejected']] = n
  }
  return { accepted: counts.accepted, rejected }
}

/** The runner's problems as sentences: the engine's, else one per vendor. */
function runnerProblemList (check: DockerReadiness): string[] {
  if (check.engine !== null) return [check.engine]
  return Object.values(check.vendors)
}

function listLeases (ledger: Ledger, state: string | null): LeaseRecord[] {
  return state == null ? ledger.listLeases() : ledger.listLeases({ state: state as LeaseRecord['state'] })
}
