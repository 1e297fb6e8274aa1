// `gpumesh quote` in process: the options a renter can get wrong, and an offline quote's table and
// warnings (the live market is covered end to end in test/quote-e2e.test.ts).
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main, type CommandContext } from '../src/index.js'

let base: string
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'gpumesh-cli-quote-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

async function gpumesh (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const ctx: CommandContext = {
    env: { GPUMESH_HOME: join(base, 'home') },
    cwd: base,
    stdout: (t) => { stdout += t },
    stderr: (t) => { stderr += t },
    signal: new AbortController().signal,
    interactive: false
  }
  return { code: await main(args, ctx), stdout, stderr }
}

describe('gpumesh quote', () => {
  it('refuses options that do not say what is trained, or say it twice, with exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['quote', '--offline'], /Say what is trained: --flops F, or --params N with --tokens D or --chinchilla/],
      [['quote', '--params', '7B', '--offline'], /Say what is trained/],
      [['quote', '--flops', '1e21', '--tokens', '1T', '--offline'], /Give either --flops or the model/],
      [['quote', '--params', '7B', '--tokens', '1T', '--chinchilla', '--offline'], /Give --tokens or --chinchilla, not both/],
      [['quote', '--flops', '1e21', '--gpus', '8', '--deadline', '24', '--offline'], /Give --gpus or --deadline, not both/],
      [['quote', '--flops', '1e21', '--mfu', '1.5', '--offline'], /--mfu must be a number above 0 and at most 1/],
      [['quote', '--flops', '1e21', '--gpus', '2.5', '--offline'], /--gpus must be a whole number above 0/],
      [['quote', '--flops', 'lots', '--offline'], /--flops: "lots" is not a count/],
      [['quote', '--flops', '1e21', '--offline', '--matcher', '/ip4/127.0.0.1/tcp/1'], /Give --matcher or --offline, not both/],
      [['quote', '--flops', '1e21', '--data-dir', join(base, 'none')], /No matcher given and none running here.*--offline/]
    ]
    for (const [args, message] of cases) {
      const r = await gpumesh(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(message)
    }
  })

  it('quotes offline from reference prices, sorted by cost, with the arithmetic and warnings in words', async () => {
    const r = await gpumesh(['quote', '--params', '70B', '--tokens', '1.4T', '--mfu', '0.7', '--gpus', '8', '--offline', '--classes', 'H100-SXM-80GB,A100-SXM4-80GB,L4'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^Training compute: 5\.88e23 FLOPs = 6 × 7e10 parameters × 1\.4e12 tokens; MFU 0\.7\./)
    expect(r.stdout).toMatch(/reference list prices \(USD, as of \d{4}-\d{2}-\d{2}\), not live offers/)
    const rows = r.stdout.split('\n').filter((l) => /^(H100-SXM-80GB|A100-SXM4-80GB|L4) /.test(l)).map((l) => l.split(/\s+/)[0])
    // Cost per peak TFLOPS: H100 3.78 / 989, L4 0.7992 / 121, A100 2.4984 / 312 — cheapest run first.
    expect(rows).toEqual(['H100-SXM-80GB', 'L4', 'A100-SXM4-80GB'])
    // 70B × 16 bytes = 1.12 TB; over 8 GPUs 140 GB each: fits neither 80 GB nor 24 GB.
    expect(r.stdout).toMatch(/warning: An MFU of 0\.7 is above 0\.6/)
    expect(r.stdout).toMatch(/warning: The model's training state, 1\.0 TiB at 16 bytes per parameter, fits none of the priced classes/)
    expect(r.stdout).toMatch(/NO\n/)
  })

  it('reads another reference price file when named, and says what is wrong with a bad one', async () => {
    const file = join(base, 'prices.json')
    await writeFile(file, JSON.stringify({ version: 1, asOf: '2026-01-01', currency: 'USD', decimals: 6, prices: [{ class: 'H100-SXM-80GB', pricePerGpuHour: '2.00', vendor: 'V', offering: 'o', url: 'https://example.com/', seen: '2026-01-01' }] }))
    const r = await gpumesh(['quote', '--flops', '3.56040e18', '--mfu', '1', '--gpus', '1', '--offline', '--prices', 'prices.json', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const q = JSON.parse(r.stdout) as { classes: Array<{ class: string, gpuHours: number, costLow: string, costLowTokens: string }> }
    // 3.5604e18 / 989e12 / 3600 = 1 GPU-hour at 2.00.
    expect(q.classes).toEqual([expect.objectContaining({ class: 'H100-SXM-80GB', gpuHours: 1, costLow: '2000000', costLowTokens: '2.000000' })])
    await writeFile(file, JSON.stringify({ version: 1, asOf: 'yesterday' }))
    const bad = await gpumesh(['quote', '--flops', '1e21', '--offline', '--prices', 'prices.json'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/prices\.json: the reference prices are malformed at asOf/)
  })
})
