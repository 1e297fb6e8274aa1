import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/** The roles: each runs on its own and talks to the others only over the network. */
const ROLES = ['provider', 'matcher', 'renter']
/** The libraries under the roles; none of them may import a role (or the cli). */
const LIBRARIES = ['protocol', 'net', 'ledger', 'settlement']

/**
 * The few library files that need the operating-system process itself, not a value the cli could
 * hand in, with the names each may import from node:process (never the whole object):
 * - the data directory lock writes this daemon's pid and probes the holder's with signal 0;
 * - jobs/proc.ts signals a job's process group (the runners stop jobs through it);
 * - the docker runner starts containers as the daemon's own uid:gid, so their files stay the daemon's.
 */
const OS_PROCESS = {
  'packages/provider/src/data-dir-lock.ts': ['kill', 'pid'],
  'packages/provider/src/jobs/proc.ts': ['kill'],
  'packages/provider/src/jobs/docker-runner.ts': ['getuid', 'getgid']
}

/**
 * The boundaries between packages, per package's src (tests may reach anything):
 * - only packages/cli touches `process` (argv, env, cwd, stdout, exit): the rest take those values
 *   from their caller, which keeps them testable and embeddable;
 * - no role imports another role (the cli may import all), no library imports a role;
 * - roles reach libp2p (and multiaddr) only through @gpumesh/net, so the node's settings, gossip
 *   validation and stream framing live in one place.
 */
function boundaries () {
  const configs = []
  const noProcess = {
    'no-restricted-globals': ['error', { name: 'process', message: 'Only packages/cli touches process: take the value (env, cwd, argv, output, exit) from the caller.' }],
    'no-restricted-properties': ['error', { object: 'globalThis', property: 'process', message: 'Only packages/cli touches process.' }]
  }
  const importRules = (pkg, processNames) => {
    const others = [...ROLES, 'cli'].filter((p) => p !== pkg)
    const paths = ['node:process', 'process'].map((name) => processNames == null
      ? { name, message: 'Only packages/cli touches process: take the value from the caller.' }
      : { name, allowImportNames: processNames, message: `Only ${processNames.join(', ')} from the process here (see OS_PROCESS in eslint.config.js).` })
    const patterns = [{
      group: others.map((p) => `@gpumesh/${p}`),
      message: ROLES.includes(pkg) ? 'A role does not import another role; they talk over the network (the cli composes them).' : 'A library does not import a role or the cli.'
    }]
    if (ROLES.includes(pkg)) {
      patterns.push({
        group: ['libp2p', '@libp2p/*', '@chainsafe/*', '@multiformats/*'],
        message: 'Roles reach libp2p through @gpumesh/net (add what is missing there).'
      })
    }
    return { 'no-restricted-imports': ['error', { paths, patterns }] }
  }
  for (const pkg of [...ROLES, ...LIBRARIES]) {
    const files = [`packages/${pkg}/src/**`]
    const own = Object.keys(OS_PROCESS).filter((f) => f.startsWith(`packages/${pkg}/`))
    configs.push({ files, ignores: own, rules: { ...noProcess, ...importRules(pkg, null) } })
    for (const file of own) configs.push({ files: [file], rules: { ...noProcess, ...importRules(pkg, OS_PROCESS[file]) } })
  }
  return configs
}

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.bench/**', '.test-results/**', 'test/fixtures/**', 'packages/*/test/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', Buffer: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', performance: 'readonly', queueMicrotask: 'readonly', structuredClone: 'readonly', fetch: 'readonly' }
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }]
    }
  },
  {
    // Only the CLI, the scripts and the example jobs (whose log is their stdout) talk to a terminal.
    files: ['packages/cli/**', 'scripts/**', 'examples/**', 'packages/*/scripts/**', 'test/fixtures/**'],
    rules: { 'no-console': 'off' }
  },
  {
    // The provider's dashboard: a plain script in the browser.
    files: ['packages/provider/dashboard/**'],
    languageOptions: { sourceType: 'script', globals: { document: 'readonly', window: 'readonly' } }
  },
  ...boundaries(),
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  }
)
