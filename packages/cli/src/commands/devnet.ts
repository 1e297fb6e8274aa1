import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { JsonRpcProvider, Wallet, encryptKeystoreJson } from 'ethers'
import { generatePeerKey, createNode, peerKeyToBytes, type GpumeshNode } from '@gpumesh/net'
import { openLedger, type Ledger } from '@gpumesh/ledger'
import { formatAmount, jsonReplacer, type Address, type Offer } from '@gpumesh/protocol'
import { GpuProber, readProviderFile, resolveProbeExecutables, type ProviderFile } from '@gpumesh/provider'
import { readBook } from '@gpumesh/renter'
import { EscrowClient, deployEscrow, deployTestToken, mintTestToken, startDevChain, type DevChain } from '@gpumesh/settlement'
import { CliError, EXIT } from '../errors.js'
import { CONFIG_FILE, KEYSTORE_FILE, PEER_KEY_FILE, writeSecret } from '../identity.js'
import { Children, lastLines, readJson, type Child } from '../devnet/children.js'
import { withoutSecrets } from '../prompt.js'
import { MATCHER_INFO_FILE } from '../data-dir.js'
import type { Command, CommandContext } from '../context.js'

/**
 * `gpumesh devnet`: a whole market on 127.0.0.1 with nothing set up — anvil with the escrow and a
 * 6-decimal test stablecoin, a matcher and two providers (`gpumesh matcher start`, `gpumesh provider
 * start`, each a child process), a renter that deposits and runs `gpumesh lease submit` on the
 * example training job, then `gpumesh settle onchain` on the provider that ran it. Throw-away keys
 * and data directories live under one directory, removed at the end unless --keep or --dir.
 */

const EXAMPLE_JOB = fileURLToPath(new URL('../../../../examples/tiny-mlp/train.mjs', import.meta.url))
const TOKEN_DECIMALS = 6
const MINT = 1000n * 10n ** 6n
const DEPOSIT = 100n * 10n ** 6n
const BILLING_INTERVAL_SEC = 2
const TRAIN_STEPS = 40
const STEP_MS = 150
/** The two providers when this machine has no GPUs (or for the second one when it has). */
const SIMULATED = [
  { model: 'H100-SXM-80GB', count: 2, price: '2.40' },
  { model: 'A100-SXM4-80GB', count: 2, price: '1.60' }
] as const
const READY_TIMEOUT_MS = 60_000
/** The lease runs at most maxRunTimeSec (120 s) plus the order, upload and artifacts. */
const LEASE_TIMEOUT_MS = 240_000
const SETTLE_TIMEOUT_MS = 120_000
/** How long to wait for every provider's offer before going on with those in the book. */
const BOOK_PATIENCE_MS = 20_000

export interface DevnetSummary {
  leaseId: string
  provider: { name: string, address: string, peerId: string, simulated: boolean, gpuClass: string, gpus: string[] }
  state: string
  exitCode: number | null
  gpuSeconds: number
  usagePeriods: number
  paid: string
  paidFormatted: string
  redemption: { txHash: string, blockNumber: number | null, paid: string }
  providerBalanceBefore: string
  providerBalanceAfter: string
  model: string | null
  artifactsDir: string | null
  chain: { rpcUrl: string, chainId: string, escrow: string, token: string }
  matcher: string[]
  dir: string
  kept: boolean
  elapsedMs: number
}

interface NodeDir { name: string, dir: string, key: string, address: Address, simulated: boolean }

export const devnetCommand: Command = {
  name: 'devnet',
  summary: 'Run a whole local market (chain, escrow, matcher, two providers, a renter and a training job) and show every stage.',
  usage: 'devnet [--keep] [--json] [--dir DIR]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: { keep: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, dir: { type: 'string' } },
      strict: true
    })
    const root = values.dir != null ? await ownDir(join(ctx.cwd, '.'), values.dir) : await mkdtemp(join(tmpdir(), 'gpumesh-devnet-'))
    const devnet = new Devnet(ctx, { root, json: values.json, keep: values.keep, removeAtEnd: values.dir == null && !values.keep })
    return await devnet.run()
  }
}

/** --dir: created if missing; refused if it already holds something, so nothing of the user's is touched. */
async function ownDir (cwd: string, dir: string): Promise<string> {
  const path = join(dir.startsWith('/') ? '' : cwd, dir)
  try {
    const entries = await readdir(path)
    if (entries.length > 0) throw new CliError('DEVNET_DIR_NOT_EMPTY', `--dir ${path} is not empty; give a new or empty directory (the devnet writes keys and data directories there).`, { exitCode: EXIT.USAGE })
  } catch (err) {
    if (err instanceof CliError) throw err
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError('DEVNET_DIR', `Cannot use --dir ${path}: ${(err as Error).message}.`, { exitCode: EXIT.USAGE, cause: err })
  }
  await mkdir(path, { recursive: true, mode: 0o700 })
  return path
}

class Devnet {
  readonly #ctx: CommandContext
  readonly #o: { root: string, json: boolean, keep: boolean, removeAtEnd: boolean }
  readonly #children = new Children()
  readonly #started = Date.now()
  #chain: DevChain | null = null
  #node: GpumeshNode | null = null
  readonly #ledgers: Ledger[] = []
  readonly #passwordFile: string
  /** One random password for every throw-away keystore, kept in a 0600 file the children read. */
  readonly #password = randomBytes(18).toString('base64url')

  constructor (ctx: CommandContext, o: { root: string, json: boolean, keep: boolean, removeAtEnd: boolean }) {
    this.#ctx = ctx
    this.#o = o
    this.#passwordFile = join(o.root, 'password')
  }

  /** A stage line: on stdout, or on stderr with --json (stdout then carries only the summary). */
  #say (line: string): void {
    const text = `${line}\n`
    if (this.#o.json) this.#ctx.stderr(text)
    else this.#ctx.stdout(text)
  }

  #elapsed (): string {
    return `${((Date.now() - this.#started) / 1000).toFixed(1).padStart(5)}s`
  }

  #stage (what: string): void {
    this.#say(`${this.#elapsed()}  ${what}`)
  }

  #env (dataDir: string, o: { noRealGpus?: boolean } = {}): Record<string, string | undefined> {
    const { GPUMESH_PASSWORD: _p, GPUMESH_HOME: _h, ...rest } = this.#ctx.env
    // The GPU tools named in the environment would win over the config's stand-in (below).
    if (o.noRealGpus === true) for (const name of ['GPUMESH_NVIDIA_SMI', 'GPUMESH_AMD_SMI', 'GPUMESH_ROCM_SMI']) delete rest[name]
    return { ...rest, GPUMESH_PASSWORD_FILE: this.#passwordFile, GPUMESH_HOME: dataDir }
  }

  async run (): Promise<number> {
    const { signal } = this.#ctx
    let code: number = EXIT.OK
    try {
      const summary = await this.#market(signal)
      if (this.#o.keep) {
        await this.#readDashboards()
        this.#keepRunning(summary)
        const died = await Promise.race([
          this.#children.firstExit(),
          new Promise<null>((resolve) => {
            if (signal.aborted) resolve(null)
            else signal.addEventListener('abort', () => { resolve(null) }, { once: true })
          })
        ])
        if (died != null && !signal.aborted) {
          throw new CliError('DEVNET_CHILD_EXITED', `The ${died.name} stopped on its own (exit code ${await died.exited}; its log: ${died.logFile}); the rest of the devnet is stopped too.`)
        }
        this.#stage('stopping')
      }
    } catch (err) {
      if (signal.aborted) {
        this.#ctx.stderr('gpumesh: devnet interrupted; stopping everything it started.\n')
        code = 130
      } else {
        throw err
      }
    } finally {
      await this.#stop()
    }
    return code
  }

  async #stop (): Promise<void> {
    for (const ledger of this.#ledgers) ledger.close()
    try {
      await this.#node?.stop()
    } catch {
      // A libp2p node that fails to stop holds nothing the exit does not release.
    }
    await this.#children.stopAll()
    await this.#chain?.stop()
    if (this.#o.removeAtEnd) await rm(this.#o.root, { recursive: true, force: true })
  }

  async #market (signal: AbortSignal): Promise<DevnetSummary> {
    const { root } = this.#o
    if (!await stat(EXAMPLE_JOB).then(() => true, () => false)) {
      throw new CliError('DEVNET_EXAMPLE', `The example job ${EXAMPLE_JOB} is missing: run the devnet from a checkout of the repository.`)
    }
    await mkdir(join(root, 'logs'), { recursive: true, mode: 0o700 })
    await writeSecret(this.#passwordFile, this.#password)
    this.#stage(`devnet in ${root}`)
    let matcherAddrs: string[] = []

    // The matcher starts while the chain comes up: it needs nothing from it.
    const matcherDir = join(root, 'matcher')
    const matcher = this.#children.start('matcher', ['matcher', 'start', '--data-dir', matcherDir, '--listen', '/ip4/127.0.0.1/tcp/0'], {
      env: this.#env(matcherDir), cwd: root, logFile: join(root, 'logs', 'matcher.log')
    })
    const matcherUp = this.#children.waitFor(matcher, 'listening', async () => {
      matcherAddrs = (await readJson<{ addresses: string[] }>(join(matcherDir, MATCHER_INFO_FILE)))?.addresses ?? []
      return matcherAddrs.length > 0
    }, { timeoutMs: READY_TIMEOUT_MS, signal })
    matcherUp.catch(() => {})

    // The chain: anvil, the escrow, the test stablecoin.
    const realGpus = await this.#probe(signal)
    let chain: DevChain
    try {
      chain = await startDevChain({ signal })
    } catch (err) {
      if (signal.aborted) throw err
      throw new CliError('DEVNET_CHAIN', `Could not start the local chain (anvil from npm): ${(err as Error).message.replace(/\.$/, '')}. Run "npm ci" to install it.`, { cause: err })
    }
    this.#chain = chain
    // No request cache: ethers otherwise answers a second nonce query within 250 ms from the first, and
    // two transactions sent back to back from one key (the escrow, then the token) collide.
    const rpc = new JsonRpcProvider(chain.rpcUrl, undefined, { staticNetwork: true, pollingInterval: 100, cacheTimeout: -1 })
    const deployer = new Wallet(key(chain, 0), rpc)
    const escrow = await deployEscrow(deployer, { withdrawalDelaySec: 3600 })
    const token = await deployTestToken(deployer, { decimals: TOKEN_DECIMALS })
    this.#stage(`chain up       ${chain.rpcUrl} (chain id ${chain.chainId}, anvil)`)
    this.#say(`               escrow ${escrow}`)
    this.#say(`               token  ${token} (Test USD, ${TOKEN_DECIMALS} decimals)`)

    // Identities: throw-away keys, funded by the chain; one password in a 0600 file.
    const providers: NodeDir[] = [
      { name: 'provider-a', dir: join(root, 'provider-a'), key: key(chain, 1), address: addr(key(chain, 1)), simulated: realGpus === 0 },
      { name: 'provider-b', dir: join(root, 'provider-b'), key: key(chain, 2), address: addr(key(chain, 2)), simulated: true }
    ]
    const renter: NodeDir = { name: 'renter', dir: join(root, 'renter'), key: key(chain, 3), address: addr(key(chain, 3)), simulated: false }
    await Promise.all([...providers, renter].map(async (n) => { await this.#identity(n) }))

    await matcherUp
    this.#stage(`matcher        ${matcherAddrs[0] ?? ''}`)

    // Two providers, settling on chain, bootstrapping to the matcher.
    const running = await Promise.all(providers.map(async (p, i) => {
      await this.#providerConfig(p, i, { hideRealGpus: p.simulated && realGpus > 0, rpcUrl: chain.rpcUrl, chainId: chain.chainId, escrow, token, matcher: matcherAddrs })
      const child = this.#children.start(p.name, ['provider', 'start', '--data-dir', p.dir], {
        env: this.#env(p.dir, { noRealGpus: p.simulated && realGpus > 0 }), cwd: root, logFile: join(root, 'logs', `${p.name}.log`)
      })
      let info: ProviderFile | null = null
      await this.#children.waitFor(child, 'running', async () => {
        info = await readProviderFile(p.dir).catch(() => null)
        return info != null
      }, { timeoutMs: READY_TIMEOUT_MS, signal })
      const file = info as unknown as ProviderFile
      this.#stage(`${p.name.padEnd(14)} ${p.address} peer …${file.peerId.slice(-8)} (${p.simulated ? `${SIMULATED[i]?.count ?? 0} × ${SIMULATED[i]?.model ?? ''}, SIMULATED` : `${realGpus} real GPU(s)`})`)
      return { ...p, child, info: file }
    }))
    for (const p of running) this.#ledgers.push(openLedger(join(p.dir, 'ledger.sqlite')))

    // The book: wait until the matcher holds both offers.
    this.#node = await createNode({ listen: [], connectionMonitor: { enabled: false } })
    const offers = await this.#waitForBook(matcherAddrs, running.map((p) => ({ name: p.name, peerId: p.info.peerId })), signal)
    for (const o of offers) {
      const p = running.find((r) => r.info.peerId === o.peerId)
      for (const g of o.gpus) {
        this.#stage(`offer in book  ${p?.name ?? o.peerId}: ${g.countFree} × ${g.class}${g.simulated ? ' (simulated)' : ''} at ${formatAmount(g.pricePerGpuHour, TOKEN_DECIMALS)} TUSD/GPU-hour, billed every ${o.billingIntervalSec} s`)
      }
    }

    // The renter: test stablecoins, a deposit into its escrow account.
    await mintTestToken(deployer, token, renter.address, MINT)
    const renterEscrow = new EscrowClient({ rpcUrl: chain.rpcUrl, escrow, privateKey: renter.key, pollIntervalMs: 100 })
    const deposit = await renterEscrow.deposit(token, DEPOSIT, { signal })
    this.#stage(`renter         ${renter.address} deposited ${formatAmount(DEPOSIT, TOKEN_DECIMALS)} TUSD into escrow (tx ${deposit.txHash})`)
    const watcher = new EscrowClient({ rpcUrl: chain.rpcUrl, escrow, pollIntervalMs: 100 })
    const balancesBefore = await Promise.all(running.map(async (p) => await watcher.tokenBalance(token, p.address)))

    // The job: the example, bundled and leased through the matcher.
    const jobDir = join(renter.dir, 'job')
    await mkdir(jobDir, { recursive: true })
    await copyFile(EXAMPLE_JOB, join(jobDir, 'train.mjs'))
    const jobFile = join(jobDir, 'job.yaml')
    await writeFile(jobFile, jobYaml({ token, escrow, chainId: chain.chainId }))
    this.#stage(`order          1 GPU for ${relative(root, jobFile)} (examples/tiny-mlp, ${TRAIN_STEPS} steps), up to 3.00 TUSD/GPU-hour, through the matcher`)
    const outDir = join(renter.dir, 'out')
    let summaryText = ''
    const submit = this.#children.start('renter', ['lease', 'submit', jobFile, '--matcher', matcherAddrs[0] ?? '', '--data-dir', renter.dir, '--out', outDir, '--json'], {
      env: this.#env(renter.dir),
      cwd: renter.dir,
      logFile: join(root, 'logs', 'renter.log'),
      onStdout: (line) => { summaryText += line + '\n' },
      onStderr: (line) => {
        if (line.startsWith('gpumesh: ')) this.#stage(`renter         ${line.slice(9)}`)
        else if (line !== '') this.#say(`         job │ ${line}`)
      }
    })
    const watch = this.#watchLedgers(running, signal)
    const submitCode = await this.#finish(submit, LEASE_TIMEOUT_MS, signal)
    watch.stop()
    await watch.done
    if (submitCode !== 0) throw new CliError('DEVNET_LEASE', `"gpumesh lease submit" exited ${submitCode}: ${lastLines(submit.output())} (its log: ${submit.logFile}).`)
    const lease = JSON.parse(summaryText) as { leaseId: string, provider: string, providerPeerId: string, state: string, exitCode: number | null, gpuSeconds: number, paid: string, gpuClass: string, gpus: string[], artifactsDir: string | null, artifacts: { files: number } | null }
    const winner = running.find((p) => p.info.peerId === lease.providerPeerId)
    if (winner == null) throw new CliError('DEVNET_LEASE', `The lease went to a provider the devnet did not start (${lease.providerPeerId}).`)
    const model = lease.artifactsDir == null ? null : await findFile(lease.artifactsDir, 'model.json')
    this.#stage(`artifacts      ${lease.artifactsDir ?? 'none'} (${lease.artifacts?.files ?? 0} files)${model != null ? `; trained weights ${model}` : ''}`)

    // Redemption: the provider that ran the job redeems its newest voucher at the escrow.
    this.#stage(`settle         "gpumesh settle onchain" on ${winner.name}`)
    let settleText = ''
    const settle = this.#children.start('settle', ['settle', 'onchain', '--json', '--data-dir', winner.dir], {
      env: this.#env(winner.dir), cwd: root, logFile: join(root, 'logs', 'settle.log'), onStdout: (line) => { settleText += line + '\n' }
    })
    const settleCode = await this.#finish(settle, SETTLE_TIMEOUT_MS, signal)
    if (settleCode !== 0) throw new CliError('DEVNET_SETTLE', `"gpumesh settle onchain" exited ${settleCode}: ${lastLines(settle.output())} (its log: ${settle.logFile}).`)
    const report = JSON.parse(settleText) as { batches: Array<{ txHash: string | null, blockNumber: number | null, state: string, paid: string }> }
    const batch = report.batches.find((b) => b.state === 'confirmed' && b.txHash != null)
    if (batch?.txHash == null) throw new CliError('DEVNET_SETTLE', `"gpumesh settle onchain" redeemed nothing: ${settleText.trim()}.`)
    const receipt = await rpc.getTransactionReceipt(batch.txHash)
    const index = running.indexOf(winner)
    const balanceAfter = await watcher.tokenBalance(token, winner.address)
    this.#stage(`redeemed       ${formatAmount(BigInt(batch.paid), TOKEN_DECIMALS)} TUSD to ${winner.address} in tx ${batch.txHash} (block ${receipt?.blockNumber ?? '?'}, status ${receipt?.status === 1 ? 'success' : 'FAILED'})`)
    rpc.destroy()

    const summary: DevnetSummary = {
      leaseId: lease.leaseId,
      provider: { name: winner.name, address: winner.address, peerId: winner.info.peerId, simulated: winner.simulated, gpuClass: lease.gpuClass, gpus: lease.gpus },
      state: lease.state,
      exitCode: lease.exitCode,
      gpuSeconds: lease.gpuSeconds,
      usagePeriods: this.#ledgers[index]?.usagePeriods(lease.leaseId).length ?? 0,
      paid: lease.paid,
      paidFormatted: formatAmount(BigInt(lease.paid), TOKEN_DECIMALS),
      redemption: { txHash: batch.txHash, blockNumber: receipt?.blockNumber ?? batch.blockNumber, paid: batch.paid },
      providerBalanceBefore: (balancesBefore[index] ?? 0n).toString(),
      providerBalanceAfter: balanceAfter.toString(),
      model,
      artifactsDir: lease.artifactsDir,
      chain: { rpcUrl: chain.rpcUrl, chainId: chain.chainId.toString(), escrow, token },
      matcher: matcherAddrs,
      dir: root,
      kept: this.#o.keep || !this.#o.removeAtEnd,
      elapsedMs: Date.now() - this.#started
    }
    this.#printSummary(summary)
    if (lease.state !== 'completed' || lease.exitCode !== 0) throw new CliError('DEVNET_JOB', `The job ended ${lease.state}${lease.exitCode != null ? ` with exit code ${lease.exitCode}` : ''}; see ${submit.logFile}.`)
    if (receipt?.status !== 1) throw new CliError('DEVNET_SETTLE', `The redemption transaction ${batch.txHash} did not succeed.`)
    return summary
  }

  /** Waits for a command that should end by itself; one that runs past `timeoutMs` is stopped and named. */
  async #finish (child: Child, timeoutMs: number, signal: AbortSignal): Promise<number> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        child.process.kill('SIGINT')
        reject(new CliError('DEVNET_TIMEOUT', `The ${child.name} command did not finish within ${timeoutMs / 1000} s: ${lastLines(child.output())} (its log: ${child.logFile}).`))
      }, timeoutMs)
    })
    try {
      return await Promise.race([child.exited, abortPromise(signal), late])
    } finally {
      clearTimeout(timer)
    }
  }

  async #probe (signal: AbortSignal): Promise<number> {
    const result = await new GpuProber({ ...resolveProbeExecutables(undefined, this.#ctx.env), toolEnv: withoutSecrets(this.#ctx.env), timeoutMs: 10_000, maxTemperatureC: 90, allowUnknownHealth: false, simulate: [], dataDir: this.#o.root }).probe({ signal })
    const real = result.gpus.filter((g) => !g.simulated).length
    this.#stage(real > 0
      ? `GPUs           ${real} real GPU(s) on this machine (${[...new Set(result.gpus.map((g) => g.class))].join(', ')}): provider-a offers them; provider-b's are simulated`
      : 'GPUs           none found on this machine: both providers offer SIMULATED GPUs (labelled so in their offers and the book)')
    return real
  }

  async #identity (n: NodeDir): Promise<void> {
    await mkdir(n.dir, { recursive: true, mode: 0o700 })
    await writeSecret(join(n.dir, PEER_KEY_FILE), peerKeyToBytes(await generatePeerKey()))
    // A light scrypt: these keys are thrown away with the devnet and hold only test tokens.
    await writeSecret(join(n.dir, KEYSTORE_FILE), await encryptKeystoreJson({ address: n.address, privateKey: n.key }, this.#password, { scrypt: { N: 1 << 10 } }))
  }

  async #providerConfig (p: NodeDir, i: number, c: { hideRealGpus: boolean, rpcUrl: string, chainId: bigint, escrow: Address, token: Address, matcher: string[] }): Promise<void> {
    const sim = SIMULATED[i] ?? SIMULATED[0]
    // On a machine with GPUs, the simulated provider must not offer the real ones too (the other
    // provider does): its GPU tools are a script that answers as nvidia-smi does on a machine without any.
    const noGpus = join(this.#o.root, 'no-gpus.sh')
    if (c.hideRealGpus) await writeFile(noGpus, '#!/bin/sh\necho "No devices were found"\nexit 6\n', { mode: 0o755 })
    await writeFile(join(p.dir, CONFIG_FILE), [
      `# ${p.name} of a gpumesh devnet: throw-away, settles on the local chain.`,
      'logLevel: warn',
      'probe:',
      p.simulated ? `  simulate: [{ model: ${sim.model}, count: ${sim.count} }]` : '  simulate: []',
      ...(c.hideRealGpus ? [`  nvidiaSmi: "${noGpus}"`, `  amdSmi: "${noGpus}"`, `  rocmSmi: "${noGpus}"`] : []),
      'network:',
      '  listen: [/ip4/127.0.0.1/tcp/0]',
      `  bootstrap: [${c.matcher.join(', ')}]`,
      '  mdns: false',
      'api: { port: 0 }',
      'pricing:',
      `  token: "${c.token}"`,
      `  chainId: ${c.chainId}`,
      p.simulated ? `  perGpuHour: { ${sim.model}: "${sim.price}" }` : '  defaultPerGpuHour: "1.20"',
      'runner:',
      '  kind: process',
      '  stopGraceSec: 2',
      '  process: { sameUser: true }',
      'billing:',
      `  intervalSec: ${BILLING_INTERVAL_SEC}`,
      '  paymentGraceSec: 10',
      'offers: { ttlSec: 60, republishSec: 2 }',
      'settlement:',
      '  mode: onchain',
      `  rpcUrl: "${c.rpcUrl}"`,
      `  escrowAddress: "${c.escrow}"`,
      ''
    ].join('\n'))
  }

  /**
   * Waits until the matcher lists every provider's offer. A provider on real GPUs may publish none
   * (a GPU busy with a foreign process, unreadable health): after a while the devnet goes on with
   * the offers there are, and says which provider has none and where its log is.
   */
  async #waitForBook (matcher: string[], providers: Array<{ name: string, peerId: string }>, signal: AbortSignal): Promise<Offer[]> {
    const started = Date.now()
    const filters = { gpuClass: null, minGpus: null, minMemoryMiB: null, maxPricePerGpuHour: null, region: null, operator: null, includeSimulated: true }
    for (;;) {
      signal.throwIfAborted()
      let offers: Offer[] = []
      try {
        offers = (await readBook({ node: this.#node as GpumeshNode, matcher, filters, signal })).offers.filter((o) => providers.some((p) => p.peerId === o.peerId))
      } catch (err) {
        if (signal.aborted) throw err
      }
      const missing = providers.filter((p) => !offers.some((o) => o.peerId === p.peerId))
      if (missing.length === 0) return offers
      if (offers.length > 0 && Date.now() - started > BOOK_PATIENCE_MS) {
        for (const p of missing) this.#stage(`no offer       from ${p.name} after ${BOOK_PATIENCE_MS / 1000} s; going on without it (its log: ${join(this.#o.root, 'logs', `${p.name}.log`)}; "gpumesh provider status --data-dir ${join(this.#o.root, p.name)}" says why)`)
        return offers
      }
      if (Date.now() - started > READY_TIMEOUT_MS) throw new CliError('DEVNET_BOOK', `The matcher listed no provider's offer within ${READY_TIMEOUT_MS / 1000} s; see the logs in ${join(this.#o.root, 'logs')}.`)
      await sleep(200, undefined, { signal })
    }
  }

  /** Follows each provider's ledger: new leases, their state changes, usage periods and vouchers. */
  #watchLedgers (providers: Array<NodeDir & { info: ProviderFile }>, signal: AbortSignal): { stop: () => void, done: Promise<void> } {
    const seen = new Map<string, { state: string, periods: number, vouchers: number }>()
    const controller = new AbortController()
    const both = AbortSignal.any([signal, controller.signal])
    const tick = (): void => {
      providers.forEach((p, i) => {
        const ledger = this.#ledgers[i]
        if (ledger == null) return
        for (const lease of ledger.listLeases()) {
          let s = seen.get(lease.leaseId)
          if (s == null) {
            s = { state: '', periods: 0, vouchers: 0 }
            seen.set(lease.leaseId, s)
            this.#stage(`match + lease  ${lease.leaseId.slice(0, 18)}… on ${p.name}: ${lease.gpuCount} × ${lease.gpuClass} at ${formatAmount(lease.pricePerGpuHour, TOKEN_DECIMALS)} TUSD/GPU-hour, escrow ${lease.escrow.slice(0, 10)}…`)
          }
          if (lease.state !== s.state) {
            s.state = lease.state
            const what = lease.state === 'running' ? 'job bundle uploaded and verified; job running' : lease.state
            this.#stage(`lease          ${what}${lease.stateReason !== '' && lease.stateReason !== lease.state && lease.state !== 'running' ? ` (${lease.stateReason})` : ''}`)
          }
          const periods = ledger.usagePeriods(lease.leaseId)
          for (const period of periods.slice(s.periods)) {
            this.#stage(`usage report   #${period.periodIndex}: ${(Number(period.gpuMs) / 1000).toFixed(1)} GPU-s, ${formatAmount(period.amount, TOKEN_DECIMALS)} TUSD (total ${formatAmount(period.cumulativeAmount, TOKEN_DECIMALS)})${period.final ? ', final' : ''}`)
          }
          s.periods = periods.length
          const vouchers = ledger.vouchers(lease.leaseId)
          for (const v of vouchers.slice(s.vouchers)) {
            this.#stage(`voucher        #${v.sequence}: renter signed ${formatAmount(v.cumulativeAmount, TOKEN_DECIMALS)} TUSD cumulative`)
          }
          s.vouchers = vouchers.length
        }
      })
    }
    const done = (async () => {
      while (!both.aborted) {
        tick()
        await sleep(200, undefined, { signal: both }).catch(() => {})
      }
      tick()
    })()
    return { stop: () => { controller.abort() }, done }
  }

  #printSummary (s: DevnetSummary): void {
    if (this.#o.json) {
      this.#ctx.stdout(JSON.stringify(s, jsonReplacer, 2) + '\n')
      return
    }
    this.#say([
      '',
      'summary',
      `  lease         ${s.leaseId} (${s.state}, exit code ${s.exitCode ?? '-'})`,
      `  provider      ${s.provider.name} ${s.provider.address} (peer ${s.provider.peerId}), ${s.provider.gpus.length} × ${s.provider.gpuClass}${s.provider.simulated ? ' SIMULATED' : ''}`,
      `  GPU time      ${s.gpuSeconds.toFixed(1)} GPU-seconds in ${s.usagePeriods} usage periods`,
      `  paid          ${s.paidFormatted} TUSD (${s.paid} base units), vouchered and redeemed`,
      `  redemption    tx ${s.redemption.txHash} (block ${s.redemption.blockNumber ?? '?'})`,
      `  trained model ${s.model ?? 'not found in the artifacts'}`,
      `  time          ${(s.elapsedMs / 1000).toFixed(1)} s`,
      ''
    ].join('\n'))
  }

  #keepRunning (s: DevnetSummary): void {
    const lines: string[] = ['the market keeps running:']
    for (const name of ['provider-a', 'provider-b']) lines.push(`  ${name.padEnd(12)} dashboard ${this.#dashboards.get(name) ?? 'API off'}`)
    lines.push(
      `  matcher      ${s.matcher.join(' ')}`,
      `  chain        ${s.chain.rpcUrl} (chain id ${s.chain.chainId})`,
      `  escrow       ${s.chain.escrow}`,
      `  token        ${s.chain.token}`,
      '  point another gpumesh at it:',
      `    export GPUMESH_RPC_URL=${s.chain.rpcUrl} GPUMESH_ESCROW=${s.chain.escrow} GPUMESH_TOKEN=${s.chain.token} GPUMESH_PASSWORD_FILE=${this.#passwordFile}`,
      `    gpumesh offers --matcher ${s.matcher[0] ?? ''} --include-simulated`,
      `    gpumesh lease submit ${join(this.#o.root, 'renter', 'job', 'job.yaml')} --matcher ${s.matcher[0] ?? ''} --data-dir ${join(this.#o.root, 'renter')}`,
      `  files        ${this.#o.root} (kept after the stop)`,
      'devnet ready: press Ctrl-C to stop everything.'
    )
    this.#say(lines.join('\n'))
  }

  readonly #dashboards = new Map<string, string>()

  /** Reads each provider's API link (`<url>/?token=<token>`) from its provider.json. */
  async #readDashboards (): Promise<void> {
    for (const name of ['provider-a', 'provider-b']) {
      const info = await readProviderFile(join(this.#o.root, name)).catch(() => null)
      if (info?.api != null) this.#dashboards.set(name, `${info.api.url.replace(/\/$/, '')}/?token=${info.api.token}`)
    }
  }
}

function key (chain: DevChain, i: number): string {
  const k = chain.keys[i]
  if (k == null) throw new CliError('DEVNET_CHAIN', `The local chain funded only ${chain.keys.length} accounts; the devnet needs at least ${i + 1}.`)
  return k
}

function addr (privateKey: string): Address {
  return new Wallet(privateKey).address as Address
}

function jobYaml (c: { token: Address, escrow: Address, chainId: bigint }): string {
  return [
    '# The devnet\'s job: examples/tiny-mlp on one GPU of any class (simulated ones accepted).',
    'gpus: { count: 1, classes: [], minMemoryMiB: 1 }',
    'maxPricePerGpuHour: "3.00"',
    'budget: "1.00"',
    `token: { address: "${c.token}", decimals: ${TOKEN_DECIMALS}, chainId: ${c.chainId}, escrow: "${c.escrow}" }`,
    'durationSec: 600',
    `command: ${JSON.stringify(process.execPath)}`,
    'args: [train.mjs]',
    `env: { TRAIN_STEPS: "${TRAIN_STEPS}", STEP_MS: "${STEP_MS}", CHECKPOINT_EVERY: "10" }`,
    'maxRunTimeSec: 120',
    'files: [train.mjs]',
    'allowSimulated: true',
    ''
  ].join('\n')
}

async function findFile (dir: string, name: string): Promise<string | null> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return null
  }
  for (const e of entries) {
    const path = join(dir, e.name)
    if (e.isFile() && e.name === name) return path
    if (e.isDirectory()) {
      const found = await findFile(path, name)
      if (found != null) return found
    }
  }
  return null
}

async function abortPromise (signal: AbortSignal): Promise<never> {
  return await new Promise<never>((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason)
    else signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
  })
}
