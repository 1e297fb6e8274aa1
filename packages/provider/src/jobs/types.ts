import type { Address } from '@gpumesh/protocol'

/** A pino-compatible subset. */
export interface JobsLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

export const silentLogger: JobsLogger = Object.freeze({
  debug: (): void => {},
  info: (): void => {},
  warn: (): void => {},
  error: (): void => {}
})

/** One reading of one GPU, as the probe gives it; null where the tool does not say. */
export interface GpuSample {
  uuid: string
  utilizationPercent: number | null
  memoryUsedMiB: number | null
  powerDrawW: number | null
}

/** Reads the leased GPUs now. Simulated GPUs give synthetic samples (see `simulatedGpuSampler`). */
export type SampleGpus = (uuids: readonly string[]) => Promise<GpuSample[]>

/** The EIP-712 contract address vouchers and usage reports are signed against (zero off-chain). */
export type VerifyingContract = Address
