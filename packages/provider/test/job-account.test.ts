import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { findAccount, prepareJobAccount } from '../src/job-account.js'
import { parseProviderConfig, type ConfigLayer } from '../src/index.js'

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\njob:x:1500:1600::/home/job:/bin/sh\n'

describe('the process runner\'s account', () => {
  let base: string
  let dataDir: string
  let jobsDir: string
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'gpumesh-account-'))
    await chmod(base, 0o711)
    dataDir = join(base, 'data')
    jobsDir = join(base, 'jobs')
    await mkdir(dataDir, { mode: 0o700 })
  })
  afterEach(async () => { await rm(base, { recursive: true, force: true }) })

  const config = (process: ConfigLayer, kind = 'process'): ReturnType<typeof parseProviderConfig> =>
    parseProviderConfig({ dataDir, runner: { kind, process } })
  const refusal = async (process: ConfigLayer, daemonUid = 0, dir = jobsDir): Promise<string> => {
    try {
      await prepareJobAccount(config(process), { daemonUid, jobsDir: dir, passwd: PASSWD })
    } catch (err) {
      expect(err).toMatchObject({ name: 'ProviderStartError', code: 'PROCESS_RUNNER_UNSAFE' })
      return (err as Error).message
    }
    return 'started'
  }

  it('finds an account by name, by uid, or takes uid:gid as given', () => {
    expect(findAccount('nobody', PASSWD)).toEqual({ name: 'nobody', uid: 65534, gid: 65534 })
    expect(findAccount('1500', PASSWD)).toEqual({ name: 'job', uid: 1500, gid: 1600 })
    expect(findAccount('2000:2001', PASSWD)).toEqual({ name: '2000:2001', uid: 2000, gid: 2001 })
    expect(findAccount('nosuch', PASSWD)).toBeNull()
  })

  it('needs runner.process.user or an explicit runner.process.sameUser', async () => {
    expect(await refusal({})).toMatch(/neither runner.process.user nor runner.process.sameUser is set.*payment key/)
    expect(await refusal({ sameUser: true })).toBe('started')
    expect(await prepareJobAccount(config({}, 'docker'), { daemonUid: 1000, jobsDir })).toBeNull()
  })

  it('refuses what would leave the keys readable or the jobs unreachable, naming the fix', async () => {
    expect(await refusal({ user: 'nobody', jobsDir }, 1000)).toMatch(/runs as uid 1000 and only root may start jobs as another user/)
    expect(await refusal({ user: 'nosuch', jobsDir })).toMatch(/"nosuch" is not an account on this host/)
    expect(await refusal({ user: 'root', jobsDir })).toMatch(/the daemon's own/)
    expect(await refusal({ user: 'nobody' }, 0, join(dataDir, 'jobs'))).toMatch(/inside the data directory.*Set runner.process.jobsDir/)
    await chmod(dataDir, 0o755)
    expect(await refusal({ user: 'nobody', jobsDir })).toMatch(/is open to other users \(mode 755\).*chmod 700/)
    await chmod(dataDir, 0o700)
    const closed = join(base, 'closed')
    await mkdir(closed, { mode: 0o700 })
    expect(await refusal({ user: 'nobody', jobsDir: join(closed, 'jobs') }, 0, join(closed, 'jobs'))).toContain(`${closed} is closed to other users (mode 700)`)
  })

  it('hands back the account when the daemon may switch to it, the jobs directory made enterable but not listable', async () => {
    const account = await prepareJobAccount(config({ user: 'nobody', jobsDir }), { daemonUid: 0, jobsDir, passwd: PASSWD })
      .catch((err: unknown) => err as Error)
    // As root the jobs directory is the daemon's; elsewhere it belongs to the test's user and is refused as not the daemon's.
    if (process.getuid?.() === 0) expect(account).toEqual({ name: 'nobody', uid: 65534, gid: 65534 })
    else expect(account).toMatchObject({ code: 'PROCESS_RUNNER_UNSAFE' })
  })
})
