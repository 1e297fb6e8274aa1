/**
 * scripts/gpumesh.service, the provider as a systemd service: the directives the README promises, the
 * credential name the CLI reads, the entry point the repository has, and `systemd-analyze verify`
 * finding nothing to complain about where systemd is installed.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { PASSWORD_CREDENTIAL } from '../packages/cli/src/prompt.js'

const UNIT = fileURLToPath(new URL('../scripts/gpumesh.service', import.meta.url))
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p)) ?? null

async function directives (): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>()
  for (const raw of (await readFile(UNIT, 'utf8')).split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith('[')) continue
    const eq = line.indexOf('=')
    const key = line.slice(0, eq)
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)])
  }
  return out
}

describe('systemd unit', () => {
  it('restarts on failure as a dedicated user, reads the password as a credential, and is hardened', async () => {
    const d = await directives()
    const one = (key: string): string | undefined => d.get(key)?.at(-1)
    expect(one('Restart')).toBe('on-failure')
    expect(one('User')).toBe('gpumesh')
    expect(one('LoadCredential')).toBe(`${PASSWORD_CREDENTIAL}:/etc/gpumesh/password`)
    expect(one('NoNewPrivileges')).toBe('true')
    expect(one('ProtectSystem')).toBe('strict')
    expect(one('CapabilityBoundingSet')).toBe('')
    // The password is never in the unit itself.
    expect([...d.keys()]).not.toContain('Environment')
    // The data directory the daemon is pointed at is the one it may write.
    const exec = one('ExecStart') as string
    const dataDir = /--data-dir (\S+)/.exec(exec)?.[1]
    expect(dataDir).toBe('/var/lib/gpumesh')
    expect(one('ReadWritePaths')).toBe(dataDir)
    expect(`/var/lib/${one('StateDirectory')}`).toBe(dataDir)
    // The entry point exists in the repository (installed under /opt/gpumesh).
    const entry = /\/opt\/gpumesh\/(\S+)/.exec(exec)?.[1] as string
    expect(existsSync(fileURLToPath(new URL(`../${entry}`, import.meta.url)))).toBe(true)
    expect(exec).toContain(' provider start ')
  })

  it(ANALYZE === null
    ? 'passes systemd-analyze verify (not installed here: checked by the directives above only)'
    : 'passes systemd-analyze verify', async () => {
    if (ANALYZE === null) return
    const { stdout, stderr } = await promisify(execFile)(ANALYZE, ['verify', UNIT], { timeout: 20_000 })
    // verify exits 0 even when it ignores a line; what it ignored it says on stderr.
    const complaints = `${stdout}\n${stderr}`.split('\n').filter((l) => l.includes('gpumesh.service') && !/Command .* is not executable|node.*No such file/.test(l))
    expect(complaints).toEqual([])
  })
})
