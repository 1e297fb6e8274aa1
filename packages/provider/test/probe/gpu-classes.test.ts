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
    ['AMD Instinct MI100', 'MI100', 32752, []],
    ['Arcturus GL-XL [Instinct MI100]', 'MI100', 32752, ['1002:738c']],
    ['AMD Instinct MI210', 'MI210', 65520, ['1002:740f']],
    ['AMD Instinct MI250X', 'MI250X', 65520, []],
    ['AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2', 'MI250X', 65520, ['1002:7408']],
    ['AMD Instinct MI250X/MI250', 'MI250', 65520, ['1002:740c']],
    ['AMD Instinct MI250', 'MI250', 65520, []],
    ['AMD Instinct MI300X OAM', 'MI300X', 196592, ['1002:74a1']],
    ['AMD Instinct MI325X', 'MI325X', null, ['1002:74a5']],
    ['AMD Instinct MI350X', 'MI350X', null, ['1002:75a0']],
    ['AMD Instinct MI355X', 'MI355X', null, []],
    ['AMD Radeon PRO W7900', 'W7900', 49136, []],
    ['Radeon RX 7900 XTX', 'RX-7900-XTX', 24560, ['1002:744c']],
    ['Radeon RX 7900 XT', 'RX-7900-XT', 20464, ['1002:744c']],
    ['AMD Radeon AI PRO R9700', 'R9700', 32624, []],
    // rocm-smi's name when its "Card Series" says nothing: the "Card Model", the PCI device id.
    ['0x7551', 'R9700', 32624, ['1002:7551']],
    ['NVIDIA GeForce RTX 5090', 'RTX-5090', 32607, []],
    ['NVIDIA RTX 6000 Ada Generation', 'RTX-6000-ADA', 49140, []],
    ['NVIDIA RTX A6000', 'RTX-A6000', 49140, []],
    ['NVIDIA A40', 'A40', 46068, []],
    ['NVIDIA L40', 'L40', 46068, []],
    ['NVIDIA L40S', 'L40S', 46068, []],
    ['NVIDIA H20', 'H20', 97871, []],
    ['NVIDIA H200', 'H200-SXM-141GB', 143771, []],
    ['NVIDIA B100', 'B100', null, []],
    ['NVIDIA GB200', 'GB200', null, []],
    ['NVIDIA B200', 'B200', 183359, []]
  ] as Array<[string, string, number | null, string[]]>)('classes %s as %s', (name, expected, memory, aliases) => {
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

  it('holds the dense BF16 figure of each data sheet (config/gpu-classes.sources.md), not the sparse one', () => {
    // A sparse figure slipped in would double these.
    const dense: Record<string, number> = { 'RTX-5090': 209.5, H20: 148, L40: 181.05, A40: 149.7, 'RTX-A6000': 154.8, 'RTX-6000-ADA': 364.2, MI325X: 1307.4, MI355X: 2516.6, GB200: 2500, B100: 1750 }
    for (const [cls, tflops] of Object.entries(dense)) expect(table.lookup(cls)?.bf16Tflops, cls).toBe(tflops)
  })
})
