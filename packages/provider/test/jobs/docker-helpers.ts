/**
 * The docker engine tests run against: a real one where `docker info` answers (`.ci/run` installs
 * Debian's docker.io and starts dockerd when it can), else the stand-in CLI in fixtures/bin/docker,
 * which runs the container's command on the host. Either way the test image is made here: no registry
 * is reachable, so a root filesystem with busybox (Debian's busybox-static) is tarred and `docker
 * import`ed. `engine.why` says why the stand-in is used; tests put it in their titles.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const STAND_IN_DOCKER = fileURLToPath(new URL('../fixtures/bin/docker', import.meta.url))

/** The image every test job runs in. */
export const TEST_IMAGE = 'gpumesh-test/busybox:1'

/** Applets the test jobs use, linked to busybox in the image. */
const APPLETS = ['sh', 'echo', 'sleep', 'cat', 'ls', 'mkdir', 'printf', 'env', 'id', 'true', 'false', 'date', 'seq', 'kill']

export interface TestEngine {
  /** The docker binary to run: `docker`, or the stand-in's path. */
  binary: string
  real: boolean
  /** Why the stand-in is used (null with a real engine). */
  why: string | null
  /** `real engine 20.10.24` or `stand-in docker (…why…)`, for test titles. */
  label: string
  /** The id (sha256:…) of TEST_IMAGE. */
  imageId: string
}

function busyboxPath (): string | null {
  return ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p)) ?? null
}

function realEngineVersion (): { version: string | null, why: string } {
  const out = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 10_000 })
  if (out.error !== undefined) return { version: null, why: `no docker CLI (${out.error.message})` }
  const version = out.stdout.trim()
  if (out.status !== 0 || version === '') return { version: null, why: `no docker engine answers (${(out.stderr.split('\n')[0] ?? '').trim() || `docker info exited ${String(out.status)}`})` }
  return { version, why: '' }
}

/**
 * Tars a root filesystem holding busybox and its applets and imports it as `name`; returns the image
 * id. `marker` (written to /etc/marker) makes an image whose layer is its own.
 */
export function importBusyboxImage (binary: string, name = TEST_IMAGE, marker: string | null = null): string {
  const busybox = busyboxPath()
  const root = mkdtempSync(join(tmpdir(), 'gpumesh-rootfs-'))
  try {
    mkdirSync(join(root, 'bin'))
    mkdirSync(join(root, 'tmp'))
    if (marker !== null) {
      mkdirSync(join(root, 'etc'))
      writeFileSync(join(root, 'etc', 'marker'), marker)
    }
    if (busybox !== null) {
      copyFileSync(busybox, join(root, 'bin', 'busybox'))
      for (const applet of APPLETS) symlinkSync('busybox', join(root, 'bin', applet))
    }
    const tar = execFileSync('tar', ['-C', root, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 })
    return execFileSync(binary, ['import', '-', name], { input: tar, encoding: 'utf8', timeout: 60_000 }).trim()
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

let cached: TestEngine | null = null

/**
 * TEST_IMAGE's id in that engine, imported first if absent. Made once per engine (bump TEST_IMAGE's tag
 * when the image changes), so runs leave no dangling images; test files running in parallel take a lock
 * file around it, so they agree on one id.
 */
function ensureTestImage (binary: string): string {
  const lock = join(tmpdir(), `gpumesh-test-image-${binary === 'docker' ? 'engine' : 'stand-in'}.lock`)
  const deadline = Date.now() + 120_000
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'))
      break
    } catch {
      // A lock older than two minutes was left by a killed run.
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()
      if (Date.now() - since > 120_000) rmSync(lock, { force: true })
      if (Date.now() > deadline) throw new Error(`the test image lock ${lock} is held`)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
    }
  }
  try {
    const present = spawnSync(binary, ['image', 'inspect', '--format', '{{json .}}', TEST_IMAGE], { encoding: 'utf8', timeout: 30_000 })
    if (present.status === 0) return (JSON.parse(present.stdout) as { Id: string }).Id
    return importBusyboxImage(binary)
  } finally {
    rmSync(lock, { force: true })
  }
}

/** The engine for this test file, with TEST_IMAGE imported into it. */
export function testEngine (): TestEngine {
  if (cached !== null) return cached
  const { version, why } = realEngineVersion()
  let standInWhy = why
  if (version !== null) {
    if (busyboxPath() === null) {
      standInWhy = 'busybox-static is not installed, so no test image can be made'
    } else {
      try {
        cached = { binary: 'docker', real: true, why: null, label: `real engine ${version}`, imageId: ensureTestImage('docker') }
        return cached
      } catch (err) {
        standInWhy = `docker import failed: ${(err as Error).message.split('\n')[0] ?? ''}`
      }
    }
  }
  cached = { binary: STAND_IN_DOCKER, real: false, why: standInWhy, label: `stand-in docker: ${standInWhy}`, imageId: ensureTestImage(STAND_IN_DOCKER) }
  return cached
}

/** Removes the containers of these leases, whatever state they are in (what a failed test left). */
export function removeContainers (binary: string, names: readonly string[]): void {
  for (const name of names) spawnSync(binary, ['rm', '-f', name], { stdio: 'ignore', timeout: 30_000 })
}

/** True while a container of that name exists. */
export function containerExists (binary: string, name: string): boolean {
  return spawnSync(binary, ['inspect', '--type', 'container', '--format', '{{.Id}}', name], { stdio: 'ignore', timeout: 30_000 }).status === 0
}

/** The registry binary (Debian's docker-registry), or null. */
export function registryBinary (): string | null {
  return ['/usr/bin/docker-registry', '/usr/local/bin/docker-registry'].find((p) => existsSync(p)) ?? null
}
