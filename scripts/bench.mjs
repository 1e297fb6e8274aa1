#!/usr/bin/env node
// Runs every benchmark in scripts/bench/*.mjs against the built packages.
// Each file exports `run()` resolving to { "<name>": { value, unit, ... } }.
//   npm run bench                 table on stdout
//   npm run bench -- --json       one JSON object on stdout
//   npm run bench -- ping reqres  only the files whose name contains one of the words
// Either way the figures are written to .bench/results.json.
import 'promise.withresolvers/auto'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const args = process.argv.slice(2)
const json = args.includes('--json')
const filters = args.filter((a) => !a.startsWith('--'))
const dir = fileURLToPath(new URL('./bench/', import.meta.url))
const files = (await readdir(dir)).filter((f) => f.endsWith('.mjs')).sort()
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))

const results = {}
for (const file of files) {
  if (!json) console.error(`running ${file}`)
  const mod = await import(pathToFileURL(join(dir, file)).href)
  Object.assign(results, await mod.run())
}

const root = fileURLToPath(new URL('../', import.meta.url))
await mkdir(join(root, '.bench'), { recursive: true })
await writeFile(join(root, '.bench', 'results.json'), JSON.stringify(results, null, 2) + '\n')

if (json) {
  console.log(JSON.stringify(results))
} else {
  for (const [name, figure] of Object.entries(results)) {
    const extra = Object.entries(figure).filter(([k]) => k !== 'value' && k !== 'unit')
      .map(([k, v]) => `${k}=${v}`).join(' ')
    console.log(`${name.padEnd(36)} ${String(figure.value).padStart(12)} ${figure.unit.padEnd(10)} ${extra}`)
  }
}
process.exit(0)
