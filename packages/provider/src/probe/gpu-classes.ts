import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { GpuClassesError } from './errors.js'
import type { GpuClassSpec, GpuInfo } from './types.js'

/** config/gpu-classes.json, found from this module in both src/probe and dist/probe. */
export const DEFAULT_GPU_CLASSES_FILE = new URL('../../../../config/gpu-classes.json', import.meta.url)

export const UNKNOWN_CLASS = 'unknown'

const classSchema = z.object({
  class: z.string().min(1),
  vendor: z.enum(['nvidia', 'amd', 'unknown']),
  displayName: z.string().min(1),
  match: z.array(z.string().min(1)).min(1),
  minMemoryMiB: z.number().positive().optional(),
  maxMemoryMiB: z.number().positive().optional(),
  /** CUDA compute capability (`9.0`); null or absent for AMD. Only simulated GPUs take it from here. */
  computeCapability: z.string().regex(/^\d+\.\d+$/).nullable().optional(),
  bf16Tflops: z.number().nonnegative(),
  fp32Tflops: z.number().nonnegative(),
  memoryGiB: z.number().positive(),
  memoryMiB: z.number().positive(),
  bandwidthGBs: z.number().positive(),
  tdpW: z.number().positive()
})
const fileSchema = z.object({ version: z.literal(1), classes: z.array(classSchema).min(1) })

/** A loaded class table with its compiled patterns. */
export class GpuClassTable {
  readonly classes: readonly GpuClassSpec[]
  private readonly patterns: RegExp[][]

  constructor (classes: readonly GpuClassSpec[]) {
    this.classes = classes
    this.patterns = classes.map((c) => c.match.map((m) => new RegExp(m, 'i')))
  }

  /**
   * The first class (in table order) with a pattern that matches `name` or one of `aliases` (such as the
   * PCI id `1002:7408`, for tools that print a codename instead of the model) and whose memory bounds
   * hold, or undefined.
   */
  classify (name: string, memoryTotalMiB: number | null, aliases: ReadonlyArray<string | null | undefined> = []): GpuClassSpec | undefined {
    const names = [name, ...aliases.filter((a): a is string => a != null && a !== '')]
    return this.classes.find((c, i) => {
      if (!(this.patterns[i] ?? []).some((re) => names.some((n) => re.test(n)))) return false
      if (memoryTotalMiB != null && c.minMemoryMiB != null && memoryTotalMiB < c.minMemoryMiB) return false
      if (memoryTotalMiB != null && c.maxMemoryMiB != null && memoryTotalMiB > c.maxMemoryMiB) return false
      return true
    })
  }

  /** A class by its name (`H100-SXM-80GB`, case-insensitive), or by a reported name. */
  lookup (model: string): GpuClassSpec | undefined {
    return this.classes.find((c) => c.class.toLowerCase() === model.toLowerCase()) ?? this.classify(model, null)
  }

  /**
   * A model as people write it (`probe.simulate`): a class name or display name, ignoring case, spaces
   * and dashes (`h100 sxm 80gb`); a name a tool prints or people write, through the table's patterns
   * (`NVIDIA H100 80GB HBM3`, `A100 80GB`, `H100`); or the start of exactly one class name (`MI300`).
   * When nothing fits, `candidates` holds the classes whose names start so (several: ambiguous), or is
   * empty.
   */
  resolveName (model: string): { spec: GpuClassSpec | undefined, candidates: GpuClassSpec[] } {
    const wanted = squash(model)
    const named = this.classes.find((c) => squash(c.class) === wanted || squash(c.displayName) === wanted) ?? this.classify(model, null)
    if (named != null) return { spec: named, candidates: [] }
    const family = wanted.length >= 2 ? this.classes.filter((c) => squash(c.class).startsWith(wanted)) : []
    return family.length === 1 ? { spec: family[0], candidates: [] } : { spec: undefined, candidates: family }
  }
}

function squash (name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '')
}

/** Checks and compiles a parsed class table. */
export function parseGpuClasses (doc: unknown): GpuClassTable {
  const parsed = fileSchema.safeParse(doc)
  if (!parsed.success) {
    const first = parsed.error.issues[0]
    throw new GpuClassesError(`the GPU class table is malformed at ${first?.path.join('.') ?? '(root)'}: ${first?.message ?? 'invalid'}`)
  }
  for (const c of parsed.data.classes) {
    for (const m of c.match) {
      try {
        new RegExp(m, 'i')
      } catch (err) {
        throw new GpuClassesError(`the GPU class ${c.class} has an invalid pattern ${m}`, { cause: err })
      }
    }
  }
  return new GpuClassTable(parsed.data.classes)
}

/** Reads and checks config/gpu-classes.json (or `file`). */
export async function loadGpuClasses (file: string | URL = DEFAULT_GPU_CLASSES_FILE): Promise<GpuClassTable> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new GpuClassesError(`the GPU class table ${String(file)} cannot be read`, { cause: err })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new GpuClassesError(`the GPU class table ${String(file)} is not JSON`, { cause: err })
  }
  return parseGpuClasses(doc)
}

let defaultTable: GpuClassTable | null = null

/** config/gpu-classes.json, read once (for checking configuration, which is synchronous). */
export function defaultGpuClasses (): GpuClassTable {
  if (defaultTable == null) {
    let doc: unknown
    try {
      doc = JSON.parse(readFileSync(DEFAULT_GPU_CLASSES_FILE, 'utf8'))
    } catch (err) {
      throw new GpuClassesError(`the GPU class table ${DEFAULT_GPU_CLASSES_FILE.pathname} cannot be read`, { cause: err })
    }
    defaultTable = parseGpuClasses(doc)
  }
  return defaultTable
}

/** The spec fields a GPU carries (the matching rules are left out). */
export function specOf (c: GpuClassSpec | undefined): GpuInfo['spec'] {
  if (c == null) return null
  const { match: _m, minMemoryMiB: _a, maxMemoryMiB: _b, ...spec } = c
  return spec
}
