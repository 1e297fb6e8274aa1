// Runs the built CLI as a real child process (npm test builds it first).
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, type CliRun } from '../../../test/cli-helpers.js'

const IS_ROOT = userInfo().uid === 0


let base: string
let dataDir: string
const env = (): Record<string, string> => ({ PATH: process.env.PATH ?? '', HOME: base, GPUMESH_PASSWORD_FILE: join(base, 'pw') })

async function gpumesh (args: string[]): Promise<CliRun> {
  return await runCli(args, { env: env(), timeoutMs: 30_000 })
}

/** Root ignores modes: the directory is made immutable instead (EPERM); anyone else gets a 0500 directory (EACCES). */
function closeDir (dir: string, closed: boolean): void {
  if (IS_ROOT) execFileSync('chattr', [closed ? '+i' : '-i', dir])
  else execFileSync('chmod', [closed ? '500' : '700', dir])
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'gpumesh-cli-start-'))
  await writeFile(join(base, 'pw'), 'pw')
  dataDir = join(base, 'data')
  const init = await gpumesh(['init', '--data-dir', dataDir])
  expect(init.code).toBe(0)
  await writeFile(join(dataDir, 'config.yaml'), 'network:\n  listen: [/ip4/127.0.0.1/tcp/0]\n  mdns: false\napi:\n  port: 0\nprobe:\n  simulate: [{ model: H100-SXM-80GB, count: 1 }]\n')
}, 60_000)
afterAll(async () => {
  closeDir(dataDir, false)
  await chmod(dataDir, 0o700)
  await rm(base, { recursive: true, force: true })
})

describe('gpumesh init and provider start on directories they cannot use', () => {
  it('init: a data directory below a directory nothing can be created in, or below a file, is one sentence naming it', async () => {
    const sys = await gpumesh(['init', '--data-dir', '/sys/gpumesh-test/data'])
    expect(sys.code).toBe(1)
    expect(sys.stderr).toMatch(/^gpumesh: Cannot (write to|create) the data directory \/sys\/gpumesh-test\/data: .*\(--data-dir or GPUMESH_HOME\)\.\n$/)
    await writeFile(join(base, 'a-file'), '')
    const underFile = await gpumesh(['init', '--data-dir', join(base, 'a-file', 'data')])
    expect(underFile.stderr).toBe(`gpumesh: Cannot use the data directory ${join(base, 'a-file', 'data')}: a part of that path is a file, not a directory. Choose another path (--data-dir or GPUMESH_HOME).\n`)
  }, 30_000)

  it('provider start: a data directory it cannot write to is one sentence naming it and the fix, with no log line', async () => {
    closeDir(dataDir, true)
    try {
      const r = await gpumesh(['provider', 'start', '--data-dir', dataDir])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(new RegExp(`^gpumesh: Cannot write to the data directory ${dataDir}: this user may not \\(.*\\)\\. Give this user write access to it \\(chown or chmod\\) or choose another \\(--data-dir or GPUMESH_HOME\\)\\.\\n$`))
      expect(r.stdout).toBe('')
    } finally {
      closeDir(dataDir, false)
    }
  }, 30_000)

  it('provider start: a port in use is one sentence, with no log line', async () => {
    const server: Server = createServer()
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
    const port = (server.address() as { port: number }).port
    try {
      const r = await gpumesh(['provider', 'start', '--data-dir', dataDir, '--log-level', 'warn', '--listen', `/ip4/127.0.0.1/tcp/${port}`])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(new RegExp(`^gpumesh: Cannot listen on /ip4/127\\.0\\.0\\.1/tcp/${port} \\(the port is already in use[^\\n]*\\n$`))
    } finally {
      server.close()
    }
  }, 30_000)
})
