import { readFile, stat } from 'node:fs/promises'
import { parseAmount } from '@gpumesh/protocol'
import { MAX_JOB_FILE_BYTES, jobBudget, parseJobFile, type JobFile } from '@gpumesh/renter'
import { CliError, EXIT } from '../errors.js'

/** A job file read and checked for `lease submit` (with or without `--dry-run`), and the budget it runs under. */
export interface LeaseJob {
  job: JobFile
  /** The token's decimals, for every amount printed. */
  decimals: number
  /** `--budget` when given, else the job file's budget; base units. */
  budget: bigint
}

/**
 * Reads the job file at `path` (`shown` is how the person typed it): at most MAX_JOB_FILE_BYTES,
 * parsed and checked by the renter SDK, with `--budget` (`budgetOption`) read in the job's token.
 * Throws CliError (exit 2) for an unreadable or oversized file or a bad --budget, JobFileError for
 * a file that does not parse.
 */
export async function readLeaseJob (path: string, shown: string, budgetOption: string | null): Promise<LeaseJob> {
  const job = parseJobFile(await readJobText(path, shown), shown)
  const decimals = job.token.decimals
  let budget = jobBudget(job)
  if (budgetOption != null) {
    try {
      budget = parseAmount(budgetOption, decimals)
    } catch (err) {
      throw new CliError('BAD_OPTION', `--budget: ${(err as Error).message}.`, { exitCode: EXIT.USAGE, cause: err })
    }
  }
  return { job, decimals, budget }
}

async function readJobText (path: string, shown: string): Promise<string> {
  try {
    const info = await stat(path)
    if (info.size > MAX_JOB_FILE_BYTES) throw new CliError('JOB_FILE_INVALID', `${shown} is ${info.size} bytes; a job file is at most ${MAX_JOB_FILE_BYTES}.`, { exitCode: EXIT.USAGE })
    return await readFile(path, 'utf8')
  } catch (err) {
    if (err instanceof CliError) throw err
    throw new CliError('JOB_FILE_UNREADABLE', `Cannot read the job file ${shown}: ${(err as Error).message}.`, { exitCode: EXIT.USAGE, cause: err })
  }
}
