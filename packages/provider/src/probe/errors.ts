import type { ProbeIssueCode } from './types.js'

/** A GPU tool could not be run or gave no usable answer. */
export class ProbeToolError extends Error {
  override name = 'ProbeToolError'
  readonly code: ProbeIssueCode
  readonly tool: string
  readonly exitCode: number | null

  constructor (tool: string, code: ProbeIssueCode, message: string, options: { exitCode?: number | null, cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.tool = tool
    this.code = code
    this.exitCode = options.exitCode ?? null
  }
}

/** The model class table could not be read or is malformed. */
export class GpuClassesError extends Error {
  override name = 'GpuClassesError'
  readonly code = 'CLASSES_UNAVAILABLE' as const
}
