// Runs the built CLI as a real child process (npm test builds it first).
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, type CliRun } from '../../../test/cli-helpers.js'
import { parseConfigYaml, parseProviderConfig } from '@gpumesh/provider'


let base: string
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'gpumesh-cli-init-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })


async function gpumesh (args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return await runCli(args, { env: { PATH: process.env.PATH ?? '', HOME: base, ...env }, timeoutMs: 30_000 })
}

describe('gpumesh init', () => {
  it('creates keys with mode 0600, a config that parses, and prints the ids', async () => {
    const dir = join(base, 'a')
    const r = await gpumesh(['init', '--data-dir', dir, '--json'], { GPUMESH_PASSWORD: 'pw' })
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as { peerId: string, address: string, config: string }
    expect(out.peerId).toMatch(/^12D3KooW/)
    expect(out.address).toMatch(/^0x[0-9a-fA-F]{40}$/)
    for (const file of ['peer.key', 'payment-key.json']) {
      expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600)
    }
    expect((await stat(dir)).mode & 0o077).toBe(0)
    const wallet = await Wallet.fromEncryptedJson(await readFile(join(dir, 'payment-key.json'), 'utf8'), 'pw')
    expect(wallet.address).toBe(out.address)
    const config = parseProviderConfig(parseConfigYaml(await readFile(out.config, 'utf8')))
    expect(config.dataDir).toBe(dir)
  })

  it('takes the password from GPUMESH_PASSWORD_FILE or the systemd credential, so it need not be in the environment', async () => {
    await writeFile(join(base, 'pw-file'), 'from-a-file\n', { mode: 0o600 })
    await mkdir(join(base, 'creds'))
    await writeFile(join(base, 'creds', 'gpumesh-password'), 'from-systemd', { mode: 0o600 })
    const dir = join(base, 'pw-a')
    const byFile = JSON.parse((await gpumesh(['init', '--data-dir', dir, '--json'], { GPUMESH_PASSWORD_FILE: join(base, 'pw-file') })).stdout) as { address: string }
    expect((await Wallet.fromEncryptedJson(await readFile(join(dir, 'payment-key.json'), 'utf8'), 'from-a-file')).address).toBe(byFile.address)
    const dir2 = join(base, 'pw-b')
    const byCredential = JSON.parse((await gpumesh(['init', '--data-dir', dir2, '--json'], { CREDENTIALS_DIRECTORY: join(base, 'creds') })).stdout) as { address: string }
    expect((await Wallet.fromEncryptedJson(await readFile(join(dir2, 'payment-key.json'), 'utf8'), 'from-systemd')).address).toBe(byCredential.address)
    const missing = await gpumesh(['init', '--data-dir', join(base, 'pw-c')], { GPUMESH_PASSWORD_FILE: join(base, 'no-such-file') })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toBe(`gpumesh: Cannot read the password from ${join(base, 'no-such-file')} (GPUMESH_PASSWORD_FILE): ENOENT. Check the path and that this user may read it.\n`)
  })

  it('refuses to overwrite an identity without --force, and replaces it with --force', async () => {
    const dir = join(base, 'b')
    const first = JSON.parse((await gpumesh(['init', '--data-dir', dir, '--json'], { GPUMESH_PASSWORD: 'pw' })).stdout) as { address: string }
    const again = await gpumesh(['init', '--data-dir', dir], { GPUMESH_PASSWORD: 'pw' })
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already exists.*--force/)
    expect(again.stderr).not.toMatch(/\n\s+at /)
    const forced = JSON.parse((await gpumesh(['init', '--data-dir', dir, '--json', '--force'], { GPUMESH_PASSWORD: 'pw' })).stdout) as { address: string }
    expect(forced.address).not.toBe(first.address)
  })

  it('asks for a password it cannot prompt for, and refuses an empty one without the explicit flag', async () => {
    const none = await gpumesh(['init', '--data-dir', join(base, 'c')])
    expect(none.code).toBe(2)
    expect(none.stderr).toMatch(/GPUMESH_PASSWORD/)
    const empty = await gpumesh(['init', '--data-dir', join(base, 'c')], { GPUMESH_PASSWORD: '' })
    expect(empty.code).toBe(2)
    expect(empty.stderr).toMatch(/--insecure-empty-password/)
    const allowed = await gpumesh(['init', '--data-dir', join(base, 'c'), '--insecure-empty-password'], { GPUMESH_PASSWORD: '' })
    expect(allowed.code).toBe(0)
  })

  it('uses GPUMESH_HOME when no --data-dir is given, and writes no provider config for a renter', async () => {
    const dir = join(base, 'renter')
    const r = await gpumesh(['init', '--role', 'renter', '--json'], { GPUMESH_PASSWORD: 'pw', GPUMESH_HOME: dir })
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ dataDir: dir, role: 'renter', config: null })
    await expect(stat(join(dir, 'config.yaml'))).rejects.toThrow()
  })

  it('answers an unknown option with a usage error, not a stack trace', async () => {
    const r = await gpumesh(['init', '--frobnicate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--help/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })
})
