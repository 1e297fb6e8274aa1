/**
 * What the lease session tells a renter, in words: the provider's job reply codes and the sentences of
 * the errors `runLeasedJob` throws.
 */

/** A job reply code, in words. */
export function describeJobRefusal (code: string): string {
  switch (code) {
    case 'NO_SUCH_LEASE': return 'the provider does not know this lease (expired before the job started?)'
    case 'BAD_AUTH': case 'NOT_RENTER': return 'the provider did not accept this renter\'s proof for the lease'
    case 'RUNNER_DISABLED': return 'the provider does not run jobs (runner.kind is none)'
    case 'WRONG_STATE': return 'the lease is not in a state that allows this (already started or ended)'
    case 'TOO_LARGE': return 'the bundle is larger than the provider accepts'
    case 'HASH_MISMATCH': return 'the bundle received does not hash to the order\'s jobHash'
    case 'BAD_BUNDLE': return 'the provider could not unpack the bundle'
    case 'BAD_SPEC': return 'the provider refused the command, image or environment'
    case 'SPAWN_FAILED': return 'the provider could not start the command'
    case 'IMAGE_UNAVAILABLE': return 'the provider does not have (or will not pull) the job\'s image; nothing was billed'
    case 'NOT_FINISHED': return 'the job has not finished yet'
    case 'EXPIRED_ARTIFACTS': return 'the provider no longer keeps this job\'s artifacts'
    case 'SHUTTING_DOWN': return 'the provider is shutting down'
    case 'BUDGET_SPENT': return 'the budget is spent'
    default: return `the provider answered ${code}`
  }
}

/** The sentence of JobRunError `JOB_REFUSED`. */
export function jobRefusedMessage (code: string): string {
  return `The provider refused the job: ${describeJobRefusal(code)} (${code}).`
}

/**
 * The sentence of JobRunError `PROVIDER_GONE`: why the last try failed, and for how long re-attaching
 * was tried when the job had started (`reattachedForMs`, null when it had not).
 */
export function providerGoneMessage (failure: unknown, reattachedForMs: number | null): string {
  const why = (failure as Error)?.message ?? String(failure)
  const tried = reattachedForMs != null ? `, and re-attaching failed for ${Math.round(reattachedForMs / 1000)} s` : ''
  return `The provider stopped answering${reattachedForMs != null ? ' mid-job' : ''} (${why})${tried}.`
}
