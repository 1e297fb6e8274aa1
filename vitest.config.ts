import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const packages = ['protocol', 'net', 'ledger', 'settlement', 'provider', 'matcher', 'renter', 'cli']

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources; child processes started by end-to-end tests run the
    // built CLI, which `npm test` builds first.
    alias: packages.map((name) => ({
      find: new RegExp(`^@gpumesh/${name}$`),
      replacement: fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url))
    }))
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    setupFiles: ['./vitest.setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two forks on the 2-core machine: the scenario tests mostly wait on child processes, so two halve
    // the suite (about 8½ instead of 15 minutes here) and keep it under 10.
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: '.test-results/vitest.json' }]]
  }
})
