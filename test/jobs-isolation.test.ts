/**
 * A hostile renter on the process runner. A real `gpumesh provider start` (its password in a file,
 * GPUMESH_PASSWORD_FILE, a secret canary in its environment) runs a job that tries to read the payment
 * keystore, the peer key, provider.json (the API token), the data directory's listing and
 * /proc/<daemon pid>/environ. As root the daemon runs the job as `nobody` (runner.process.user): the
 * job gets none of them, yet reads its bundle, writes its home and output, and its artifacts come back.
 * With runner.process.sameUser the same job gets all of them (so the job really tries), and with
 * neither key the daemon refuses to start, saying why. Runs the built CLI (`npx tsc -b` first).
 */
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { extract } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GpumeshNode } from '@gpumesh/net'
import type { JobEvent } from '@gpumesh/protocol'
import { downloadArtifacts, submitJob } from '@gpumesh/renter'
import { startClient, tempDir } from './provider-helpers.js'
import { clientOptions, leaseFrom, trainingBundle } from './jobs-helpers.js'
import { daemonConfig, killChildren, runCli, spawnDaemon, type ProviderJson } from './cli-helpers.js'

const PASSWORD = `pw-${randomBytes(8).toString('hex')}`
const CANARY = `canary-${randomBytes(8).toString('hex')}`
const IS_ROOT = userInfo().uid === 0


describe('a hostile job on the process runner of a real daemon', () => {
  let dataDir: string
  let removeData: () => Promise<void>
  let scratch: string
  let jobsDir: string
  let passwordFile: string
  let client: GpumeshNode
  const children: ChildProcess[] = []
  const { GPUMESH_PASSWORD: _password, ...baseEnv } = process.env
  // The daemon's environment: no password (it is in a file), a canary standing for any other secret.
  const daemonEnv = { ...baseEnv, GPUMESH_HOME: '', GPUMESH_PASSWORD_FILE: '', GPUMESH_TEST_CANARY: CANARY }

  const writeConfig = async (runner: string[]): Promise<void> => {
    await writeFile(join(dataDir, 'config.yaml'), daemonConfig(1, [
      'billing:',
      '  intervalSec: 1',
      'runner:',
      '  kind: process',
      '  stopGraceSec: 2',
      ...runner
    ]))
  }

  /** Starts the daemon; resolves with its provider.json once it runs, or with its exit code and output. */
  const startDaemon = async (): Promise<{ child: ChildProcess, info: ProviderJson | null, output: () => string, exitCode: number | null }> => {
    const started = await spawnDaemon(dataDir, { env: { ...daemonEnv, GPUMESH_PASSWORD_FILE: passwordFile }, children, mustStart: false })
    return { ...started, exitCode: started.child.exitCode }
  }

  const stopDaemon = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode != null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }

  /** Leases, runs steal.sh against `targets`, and returns its stdout lines and the artifacts' directory. */
  const runHostileJob = async (info: ProviderJson, targets: string[], name: string): Promise<{ lines: string[], state: string, artifacts: string }> => {
    const wallet = Wallet.createRandom()
    const bundle = await trainingBundle(['steal.sh', 'notes.txt'])
    const terms = await leaseFrom(client, info.addresses, wallet, bundle.sha256)
    const events: JobEvent[] = []
    const outcome = await submitJob({
      ...clientOptions(client, wallet, terms),
      spec: { command: '/bin/sh', args: ['steal.sh', ...targets], env: {}, image: null, maxRunTimeSec: 60 },
      bundle: bundle.bytes,
      bundleSize: bundle.bytes.length,
      onEvent: (e) => { events.push(e) }
    })
    const archive = join(scratch, `${name}.tar.gz`)
    await downloadArtifacts({ ...clientOptions(client, wallet, terms), destFile: archive })
    const artifacts = join(scratch, name)
    await mkdir(artifacts)
    await extract({ file: archive, cwd: artifacts })
    const lines = events.flatMap((e) => (e.kind === 'log' && e.stream === 'stdout' && e.text !== undefined ? [e.text] : []))
    return { lines, state: outcome.state, artifacts }
  }

  const secretsOf = (info: ProviderJson): string[] => [
    join(dataDir, 'payment-key.json'),
    join(dataDir, 'peer.key'),
    join(dataDir, 'provider.json'),
    `/proc/${info.pid}/environ`,
    dataDir
  ]

  beforeAll(async () => {
    ;({ dir: dataDir, remove: removeData } = await tempDir())
    scratch = await mkdtemp(join(tmpdir(), 'gpumesh-isolation-'))
    passwordFile = join(scratch, 'password')
    await writeFile(passwordFile, PASSWORD + '\n', { mode: 0o600 })
    const init = await runCli(['init', '--data-dir', dataDir], { env: { ...baseEnv, GPUMESH_PASSWORD_FILE: passwordFile, GPUMESH_HOME: '' } })
    expect(init.code, init.stderr).toBe(0)
    // Outside the data directory, reachable by other users (mkdtemp makes 0700 directories).
    const jobsParent = await mkdtemp(join(tmpdir(), 'gpumesh-jobs-'))
    await chmod(jobsParent, 0o711)
    jobsDir = join(jobsParent, 'jobs')
    client = await startClient()
  })

  afterAll(async () => {
    killChildren(children)
    await client?.stop()
    await removeData?.()
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
    if (jobsDir !== undefined) await rm(join(jobsDir, '..'), { recursive: true, force: true })
  })

  it('refuses to start a process runner with neither runner.process.user nor runner.process.sameUser, saying why in one sentence', async () => {
    await writeConfig([])
    const daemon = await startDaemon()
    expect(daemon.exitCode).toBe(1)
    expect(daemon.output()).toMatch(/^gpumesh: runner.kind is process, but neither runner.process.user nor runner.process.sameUser is set\. .*payment key.*\n$/s)
    expect(daemon.output()).not.toContain('{"level"')
  })

  if (IS_ROOT) {
    it('as root with runner.process.user nobody: the job reads none of the keystore, peer key, provider.json, data directory or daemon environment', async () => {
      await writeConfig(['  process:', '    user: nobody', `    jobsDir: ${jobsDir}`])
      const daemon = await startDaemon()
      expect(daemon.exitCode, daemon.output()).toBeNull()
      const info = daemon.info as ProviderJson
      try {
        const { lines, state, artifacts } = await runHostileJob(info, secretsOf(info), 'as-nobody')
        expect(state).toBe('completed')
        for (const target of secretsOf(info)) {
          expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^denied ${target}: .*(Permission denied|Operation not permitted)`)))
        }
        expect(lines.filter((l) => l.startsWith('stolen ') || l.startsWith('listed '))).toEqual([])
        expect(lines).toContain('uid 65534')
        // The job's own environment holds nothing of the daemon's.
        const env = lines.find((l) => l.startsWith('env ')) ?? ''
        expect(env).toContain('GPUMESH_OUTPUT_DIR')
        expect(env).not.toMatch(/GPUMESH_PASSWORD|GPUMESH_TEST_CANARY/)
        const everything = lines.join('\n')
        for (const secret of [PASSWORD, CANARY, info.api?.token ?? 'no-token']) expect(everything).not.toContain(secret)
        // It still has its own directory: the bundle, a writable home and output, artifacts back.
        expect(await readFile(join(artifacts, 'output', 'loot.txt'), 'utf8')).toBe('tried\n')
        const jobRoot = join(jobsDir, (await import('node:fs/promises').then(async (fs) => await fs.readdir(jobsDir)))[0] ?? '')
        expect(await readFile(join(jobRoot, 'work', 'scratch.txt'), 'utf8')).toBe('home a file of the bundle\n')
      } finally {
        await stopDaemon(daemon.child)
      }
    }, 60_000)
  } else {
    it('not root: runner.process.user is refused, saying that only root may start jobs as another user', async () => {
      await writeConfig(['  process:', '    user: nobody', `    jobsDir: ${jobsDir}`])
      const daemon = await startDaemon()
      expect(daemon.exitCode).toBe(1)
      expect(daemon.output()).toMatch(/only root may start jobs as another user/)
    })
  }

  it('with runner.process.sameUser the same job does read them: the test above would see a leak', async () => {
    await writeConfig(['  process:', '    sameUser: true'])
    const daemon = await startDaemon()
    expect(daemon.exitCode, daemon.output()).toBeNull()
    const info = daemon.info as ProviderJson
    try {
      const { lines, state } = await runHostileJob(info, secretsOf(info), 'same-user')
      expect(state).toBe('completed')
      const stolen = (target: string): string => Buffer.from(lines.find((l) => l.startsWith(`stolen ${target} `))?.split(' ')[2] ?? '', 'base64').toString()
      expect(stolen(join(dataDir, 'payment-key.json'))).toBe(await readFile(join(dataDir, 'payment-key.json'), 'utf8'))
      expect(stolen(join(dataDir, 'provider.json'))).toContain(info.api?.token ?? 'no-token')
      expect(stolen(`/proc/${info.pid}/environ`)).toContain(CANARY)
      // The password itself never was in the daemon's environment: it came from a file.
      expect(stolen(`/proc/${info.pid}/environ`)).not.toContain(PASSWORD)
      expect(lines.find((l) => l.startsWith('env '))).not.toMatch(/GPUMESH_PASSWORD|GPUMESH_TEST_CANARY/)
    } finally {
      await stopDaemon(daemon.child)
    }
  }, 60_000)
})
