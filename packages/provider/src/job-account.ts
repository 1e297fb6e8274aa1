import { chmod, mkdir, readFile, stat } from 'node:fs/promises'
import { dirname, relative, isAbsolute, resolve } from 'node:path'
import { ProviderStartError } from './errors.js'
import type { JobAccount } from './jobs/index.js'
import type { ProviderConfig } from './config.js'

/**
 * Who the process runner's jobs run as. A job that runs as the daemon's own user can read everything
 * the daemon can: the payment keystore, the peer key, the API token in provider.json, and
 * /proc/<daemon pid>/environ. So the process runner starts only in one of two ways:
 *
 * - `runner.process.user`: jobs run as that account. The daemon must be root (only root may start
 *   processes as another user); the data directory stays closed (mode 0700) and jobs live in
 *   `runner.process.jobsDir`, a directory outside it that the account can reach. Linux then refuses the
 *   job the daemon's files and its /proc entries.
 * - `runner.process.sameUser: true`: the owner says in writing that every renter may have all that.
 *
 * Anything else is refused before the daemon starts, with a sentence saying why and what to set.
 */

export interface JobAccountChecks {
  /** The daemon's uid (os.userInfo().uid). */
  daemonUid: number
  /** Where the jobs live (runner.process.jobsDir, or <dataDir>/jobs). */
  jobsDir: string
  /** /etc/passwd text; read from the file when absent. */
  passwd?: string
}

/** Null: jobs run as the daemon's user (sameUser) or the runner is not the process runner. */
export async function prepareJobAccount (config: ProviderConfig, checks: JobAccountChecks): Promise<JobAccount | null> {
  if (config.runner.kind !== 'process') return null
  const { user, sameUser } = config.runner.process
  if (user == null) {
    if (sameUser) return null
    throw unsafe('runner.kind is process, but neither runner.process.user nor runner.process.sameUser is set. ' +
      `A job running as the daemon's own user could read its payment key, peer key and API token in ${config.dataDir} and the password in its environment. ` +
      'Start the daemon as root with runner.process.user set to an unprivileged account (and runner.process.jobsDir), use runner.kind: docker, ' +
      'or set runner.process.sameUser: true if every renter may have them.')
  }
  if (checks.daemonUid !== 0) {
    throw unsafe(`runner.process.user is "${user}", but the daemon runs as uid ${checks.daemonUid} and only root may start jobs as another user. ` +
      'Start the daemon as root, use runner.kind: docker, or set runner.process.sameUser: true instead of runner.process.user if every renter may read this user\'s files.')
  }
  const passwd = checks.passwd ?? await readFile('/etc/passwd', 'utf8').catch(() => '')
  const account = findAccount(user, passwd)
  if (account == null) {
    throw unsafe(`runner.process.user "${user}" is not an account on this host. Name an existing unprivileged account (e.g. nobody), create one (useradd --system gpumesh-job), or give a uid:gid.`)
  }
  if (account.uid === 0 || account.uid === checks.daemonUid) {
    throw unsafe(`runner.process.user "${user}" is uid ${account.uid}, the daemon's own: jobs must run as another, unprivileged account (e.g. nobody).`)
  }
  const dataDir = resolve(config.dataDir)
  const jobsDir = resolve(checks.jobsDir)
  if (inside(dataDir, jobsDir)) {
    throw unsafe(`Jobs would live in ${jobsDir}, inside the data directory, which stays closed to ${user}. Set runner.process.jobsDir to a directory outside ${dataDir}, e.g. /var/lib/gpumesh-jobs.`)
  }
  const dataMode = (await stat(dataDir)).mode & 0o777
  if ((dataMode & 0o077) !== 0) {
    throw unsafe(`The data directory ${dataDir} is open to other users (mode ${dataMode.toString(8)}), so jobs running as ${user} could read what is in it. Run "chmod 700 ${dataDir}".`)
  }
  await mkdir(jobsDir, { recursive: true, mode: 0o711 })
  const jobsStat = await stat(jobsDir)
  if (jobsStat.uid !== checks.daemonUid) {
    throw unsafe(`The jobs directory ${jobsDir} (runner.process.jobsDir) belongs to uid ${jobsStat.uid}, not to the daemon: whoever owns it could swap the jobs' files. Give it to the daemon's user (chown) or choose another directory.`)
  }
  // Others may enter it (to reach their own job by name) but not list it.
  await chmod(jobsDir, 0o711)
  for (let dir = dirname(jobsDir); ; dir = dirname(dir)) {
    const mode = (await stat(dir)).mode
    if ((mode & 0o001) === 0) {
      throw unsafe(`${dir} is closed to other users (mode ${(mode & 0o777).toString(8)}), so jobs running as ${user} cannot reach their directories in ${jobsDir}. Run "chmod o+x ${dir}" or choose another runner.process.jobsDir.`)
    }
    if (dir === dirname(dir)) break
  }
  return account
}

/** The account named by `spec` in /etc/passwd text: a name, a listed uid, or uid:gid taken as given. */
export function findAccount (spec: string, passwd: string): JobAccount | null {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(spec)
  if (numeric?.[2] !== undefined) return { name: spec, uid: Number(numeric[1]), gid: Number(numeric[2]) }
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':')
    if (name === undefined || uid === undefined || gid === undefined || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue
    if (name === spec || (numeric != null && uid === spec)) return { name, uid: Number(uid), gid: Number(gid) }
  }
  return null
}

function inside (root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}

function unsafe (message: string): ProviderStartError {
  return new ProviderStartError('PROCESS_RUNNER_UNSAFE', message)
}
