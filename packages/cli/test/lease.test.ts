// The `gpumesh lease …` commands in process, on the failures a renter meets before any provider is involved.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePeerKey } from '@gpumesh/net'
import { main, type CommandContext } from '../src/index.js'

let base: string
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'gpumesh-cli-lease-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

interface Run { code: number, stdout: string, stderr: string }

async function gpumesh (args: string[], cwd = base): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const ctx: CommandContext = {
    env: { GPUMESH_PASSWORD: 'pw', GPUMESH_HOME: join(base, 'home') },
    cwd,
    stdout: (t) => { stdout += t },
    stderr: (t) => { stderr += t },
    signal: new AbortController().signal,
    interactive: false
  }
  const code = await main(args, ctx)
  return { code, stdout, stderr }
}

const JOB = [
  'gpus: { count: 1 }',
  'maxPricePerGpuHour: "1.00"',
  'durationSec: 600',
  'command: nvidia-smi',
  'files: [train.py]',
  ''
].join('\n')

describe('gpumesh lease', () => {
  it('names the line and key of a bad job file, exit 2', async () => {
    await writeFile(join(base, 'bad.yaml'), JOB.replace('durationSec: 600', 'durationSec: soon'))
    const r = await gpumesh(['lease', 'submit', 'bad.yaml', '--matcher', '/ip4/127.0.0.1/tcp/1'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^gpumesh: bad job file: bad\.yaml:3: durationSec: /)
  })

  it('says how to name a matcher when none is given or running', async () => {
    await writeFile(join(base, 'job.yaml'), JOB)
    const r = await gpumesh(['lease', 'submit', 'job.yaml', '--data-dir', join(base, 'empty')])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('No matcher given')
    const both = await gpumesh(['lease', 'submit', 'job.yaml', '--matcher', 'x', '--provider', 'y'])
    expect(both.code).toBe(2)
  })

  it('says the matcher is unreachable, and names a listed file that is missing', async () => {
    const dataDir = join(base, 'renter')
    expect((await gpumesh(['init', '--role', 'renter', '--data-dir', dataDir])).code).toBe(0)
    const jobDir = join(base, 'job')
    await mkdir(jobDir, { recursive: true })
    await writeFile(join(jobDir, 'job.yaml'), JOB)
    await writeFile(join(jobDir, 'train.py'), 'print("hi")\n')
    const peer = peerIdFromPrivateKey(await generatePeerKey()).toString()
    const r = await gpumesh(['lease', 'submit', 'job.yaml', '--matcher', `/ip4/127.0.0.1/tcp/1/p2p/${peer}`, '--data-dir', dataDir], jobDir)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('Could not reach the matcher')

    await writeFile(join(jobDir, 'job.yaml'), JOB.replace('[train.py]', '[train.py, missing.bin]'))
    const missing = await gpumesh(['lease', 'submit', 'job.yaml', '--matcher', `/ip4/127.0.0.1/tcp/1/p2p/${peer}`, '--data-dir', dataDir], jobDir)
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('"missing.bin" is listed in files but does not exist')
  })

  it('status, logs and cancel name a lease that is not recorded', async () => {
    const dataDir = join(base, 'nobody')
    const list = await gpumesh(['lease', 'status', '--data-dir', dataDir])
    expect(list.code).toBe(0)
    expect(list.stdout).toContain('No leases recorded')
    for (const command of ['status', 'logs', 'cancel']) {
      const r = await gpumesh(['lease', command, '0xdead', '--data-dir', dataDir])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('No lease 0xdead is recorded')
    }
  })
})
