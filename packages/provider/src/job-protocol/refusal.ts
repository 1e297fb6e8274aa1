import { CodedError, type JobReplyCode } from '@gpumesh/protocol'
import { BundleError, JobError, type JobErrorCode } from '../jobs/index.js'

/** A refusal on the wire: a reply code and a sentence. */
export class Refusal extends CodedError<JobReplyCode> {
  static override readonly name = 'JobRefusal'
}

/** The reply code of each job-side error. */
const JOB_ERROR_REPLY: Record<JobErrorCode, JobReplyCode> = {
  RUNNER_DISABLED: 'RUNNER_DISABLED',
  LEASE_NOT_FOUND: 'NO_SUCH_LEASE',
  LEASE_NOT_STARTABLE: 'WRONG_STATE',
  LEASE_NOT_CANCELLABLE: 'WRONG_STATE',
  JOB_EXISTS: 'WRONG_STATE',
  BUNDLE_HASH_MISMATCH: 'HASH_MISMATCH',
  BAD_SPEC: 'BAD_SPEC',
  SPAWN_FAILED: 'SPAWN_FAILED',
  STOPPED: 'SHUTTING_DOWN',
  JOB_NOT_FOUND: 'INTERNAL',
  RUNNER_FAILED: 'SPAWN_FAILED',
  IMAGE_UNAVAILABLE: 'IMAGE_UNAVAILABLE'
}

/**
 * The refusal a job-side error is answered with (its sentence, the wire's code), or null for an
 * error that is not the job side's (the caller answers INTERNAL and logs it).
 */
export function refusalOf (err: unknown): Refusal | null {
  if (err instanceof Refusal) return err
  if (err instanceof JobError) return new Refusal(JOB_ERROR_REPLY[err.code], err.message, { cause: err })
  if (err instanceof BundleError) {
    const code: JobReplyCode = err.code === 'COMPRESSED_TOO_LARGE' || err.code === 'UNCOMPRESSED_TOO_LARGE'
      ? 'TOO_LARGE'
      : err.code === 'ABORTED' ? 'SHUTTING_DOWN' : 'BAD_BUNDLE'
    return new Refusal(code, err.message, { cause: err })
  }
  return null
}
