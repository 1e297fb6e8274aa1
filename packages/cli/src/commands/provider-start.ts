import { parseArgs } from 'node:util'
import pino from 'pino'
import { createProvider, removeProviderFile, writeProviderFile, type ConfigLayer } from '@gpumesh/provider'
import { CliError, EXIT } from '../errors.js'
import { loadIdentity } from '../identity.js'
import { createCliLogger } from '../log.js'
import { obtainPassword, withoutSecrets } from '../prompt.js'
import { loadProviderConfig } from './provider-config.js'
import type { Command } from '../context.js'

export const providerStartCommand: Command = {
  name: 'provider start',
  summary: 'Run the provider daemon in the foreground: offer GPUs, accept leases (Ctrl-C stops it).',
  usage: 'provider start [--config FILE] [--data-dir DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--api-port N] [--log-level LEVEL]',
  async run (argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        listen: { type: 'string', multiple: true },
        bootstrap: { type: 'string', multiple: true },
        'api-port': { type: 'string' },
        'log-level': { type: 'string' }
      },
      strict: true
    })
    const layer: ConfigLayer = {}
    const network: Record<string, unknown> = {}
    if (values.listen != null) network.listen = values.listen
    if (values.bootstrap != null) network.bootstrap = values.bootstrap
    if (Object.keys(network).length > 0) layer.network = network
    if (values['api-port'] != null) {
      const port = Number(values['api-port'])
      if (!Number.isInteger(port)) throw new CliError('BAD_FLAG', `--api-port must be a port number, not "${values['api-port']}".`, { exitCode: EXIT.USAGE })
      layer.api = { port }
    }
    if (values['log-level'] != null) layer.logLevel = values['log-level']
    const config = await loadProviderConfig(ctx, { config: values.config, dataDir: values['data-dir'], layer })

    const password = await obtainPassword(ctx, { confirm: false, allowEmpty: true })
    const identity = await loadIdentity(config.dataDir, password)
    if (ctx.env.GPUMESH_PASSWORD != null && ctx.env.GPUMESH_PASSWORD_FILE == null) {
      ctx.stderr('gpumesh: the password is in this process\'s environment (GPUMESH_PASSWORD), where every process of this user can read it; prefer GPUMESH_PASSWORD_FILE or a systemd credential (gpumesh-password).\n')
    }
    // Logs go to stderr (JSON lines, or readable lines on a terminal; GPUMESH_LOG_FORMAT=json|text
    // chooses); stdout carries the few lines a person or a script reads.
    const json = ctx.env.GPUMESH_LOG_FORMAT === 'json' || (ctx.env.GPUMESH_LOG_FORMAT !== 'text' && ctx.stderrIsTerminal !== true)
    const logger = createCliLogger({
      json,
      level: config.logLevel,
      base: { pid: process.pid },
      write: (line) => { ctx.stderr(line) },
      destination: pino.destination({ fd: 2, sync: true })
    })
    const provider = createProvider(config, {
      identity: { peerKey: identity.peerKey, paymentKey: identity.wallet },
      logger,
      // Nothing the daemon hands on (jobs, GPU tools) gets the password.
      env: withoutSecrets(ctx.env)
    })
    if (ctx.signal.aborted) return EXIT.OK
    await provider.start()
    try {
      const apiUrl = provider.apiUrl()
      await writeProviderFile(config.dataDir, {
        pid: process.pid,
        peerId: provider.peerId ?? '',
        paymentAddress: provider.paymentAddress,
        addresses: provider.addresses(),
        api: apiUrl == null ? null : { url: apiUrl, token: provider.apiToken },
        startedAt: Date.now()
      })
      ctx.stdout([
        `provider ${provider.peerId ?? ''} running`,
        `  payment address  ${provider.paymentAddress}`,
        ...provider.addresses().map((a) => `  listening        ${a}`),
        `  API              ${apiUrl ?? 'off'}`,
        ...(apiUrl == null ? [] : [`  dashboard        ${apiUrl}/?token=${provider.apiToken}`]),
        ''
      ].join('\n'))
      const simulated = provider.inventory.gpus().filter((g) => g.simulated).length
      if (simulated > 0) ctx.stderr(`gpumesh: ${simulated} GPU(s) are simulated (probe.simulate): not real hardware.\n`)
      const reason = provider.status().offer.reason
      if (reason != null && reason !== 'not published yet') ctx.stderr(`gpumesh: no offer published: ${reason}\n`)
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve()
        else ctx.signal.addEventListener('abort', () => { resolve() }, { once: true })
      })
    } finally {
      await provider.stop()
      await removeProviderFile(config.dataDir)
      logger.flush()
    }
    return EXIT.OK
  }
}
