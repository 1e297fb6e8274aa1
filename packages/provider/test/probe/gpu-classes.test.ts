import { describe, expect, it } from 'vitest'
import { loadGpuClasses, type GpuClassTable } from '../../src/probe/index.js'

let table: GpuClassTable
const classOf = (name: string, memoryMiB: number | null = null, aliases: string[] = []): string =>
  table.classify(name, memoryMiB, aliases)?.class ?? 'unknown'

describe('config/gpu-classes.json', () => {
  it('loads, and every row is found by its own display name', async () => {
    table = await loadGpuClasses()
    for (const row of table.classes) expect(classOf(row.displayName, row.memoryMiB), row.class).toBe(row.class)
  })

  // Names as amd-smi (`asic.market_name`) and rocm-smi ("Card Series", "Card Model") print them; the sources
  // are in test/fixtures/amd/MANIFEST.md.
  it.each([
    ['AMD Instinct MI100', 32752, [], 'MI100'],
    ['Arcturus GL-XL [Instinct MI100]', 32752, ['1002:738c'], 'MI100'],
    ['AMD Instinct MI210', 65520, ['1002:740f'], 'MI210'],
    ['AMD Instinct MI250X', 65520, [], 'MI250X'],
    ['AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2', 65520, ['1002:7408'], 'MI250X'],
    ['AMD Instinct MI250X/MI250', 65520, ['1002:740c'], 'MI250'],
    ['AMD Instinct MI250', 65520, [], 'MI250'],
    ['AMD Instinct MI300X OAM', 196592, ['1002:74a1'], 'MI300X'],
    ['AMD Instinct MI325X', null, ['1002:74a5'], 'MI325X'],
    ['AMD Instinct MI350X', null, ['1002:75a0'], 'MI350X'],
    ['AMD Instinct MI355X', null, [], 'MI355X'],
    ['AMD Radeon PRO W7900', 49136, [], 'W7900'],
    ['Radeon RX 7900 XTX', 24560, ['1002:744c'], 'RX-7900-XTX'],
    ['Radeon RX 7900 XT', 20464, ['1002:744c'], 'RX-7900-XT'],
    ['AMD Radeon AI PRO R9700', 32752, [], 'R9700'],
    ['NVIDIA GeForce RTX 5090', 32607, [], 'RTX-5090'],
    ['NVIDIA RTX 6000 Ada Generation', 49140, [], 'RTX-6000-ADA'],
    ['NVIDIA RTX A6000', 49140, [], 'RTX-A6000'],
    ['NVIDIA A40', 46068, [], 'A40'],
    ['NVIDIA L40', 46068, [], 'L40'],
    ['NVIDIA L40S', 46068, [], 'L40S'],
    ['NVIDIA H20', 97871, [], 'H20'],
    ['NVIDIA H200', 143771, [], 'H200-SXM-141GB'],
    ['NVIDIA B100', null, [], 'B100'],
    ['NVIDIA GB200', null, [], 'GB200'],
    ['NVIDIA B200', 183359, [], 'B200']
  ] as Array<[string, number | null, string[], string]>)('classes %s as %s', (name, memory, aliases, expected) => {
    expect(classOf(name, memory, aliases)).toBe(expected)
  })

  it.each([
    ['Radeon RX 7900 GRE', 16368, ['1002:744c']],
    ['Granite Ridge [Radeon Graphics]', 512, ['1002:13c0']],
    ['NVIDIA GeForce RTX 5090 D', 32607, []],
    ['NVIDIA GeForce RTX 5090 Laptop GPU', 24463, []],
    ['NVIDIA RTX A4000', 16376, []],
    ['NVIDIA GeForce RTX 4090 D', 24564, []]
  ] as Array<[string, number, string[]]>)('leaves %s unknown rather than borrowing a bigger card\'s figures', (name, memory, aliases) => {
    expect(classOf(name, memory, aliases)).toBe('unknown')
  })

  it('gives each GCD of an MI250X half the OAM: the priced unit is the device the tools list', () => {
    const gcd = table.classes.find((c) => c.class === 'MI250X')
    expect(gcd).toMatchObject({ bf16Tflops: 191.5, memoryGiB: 64, bandwidthGBs: 1638.4, tdpW: 250 })
  })

  it('keeps the dense figure below the sparse-marketed one for parts marketed with sparsity', () => {
    // Dense BF16 per data sheet; a sparse figure slipped in would double these.
    const dense: Record<string, number> = { 'RTX-5090': 209.5, H20: 148, L40: 181.05, A40: 149.7, 'RTX-A6000': 154.8, 'RTX-6000-ADA': 364.2, MI325X: 1307.4, MI355X: 2516.6, GB200: 2500, B100: 1750 }
    for (const [cls, tflops] of Object.entries(dense)) expect(table.lookup(cls)?.bf16Tflops, cls).toBe(tflops)
  })
})
