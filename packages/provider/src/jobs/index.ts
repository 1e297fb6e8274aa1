/**
 * The job side of the provider: runners (process, docker), bundles and artifacts, the usage meter,
 * voucher acceptance, the job manager and crash recovery. No network: the job protocol sits on top.
 */
export { silentLogger } from './types.js'
export type { GpuSample, JobsLogger, SampleGpus, VerifyingContract } from './types.js'
export {
  BundleError, JobError, VoucherRefusedError, BUNDLE_ERROR_CODES, JOB_ERROR_CODES, VOUCHER_REFUSAL_CODES
} from './errors.js'
export type { BundleErrorCode, JobErrorCode, VoucherRefusalCode } from './errors.js'
export { isSameProcessAlive, parseProcStat, readProcessStat } from './proc.js'
export type { ProcessStat } from './proc.js'
export { jobPaths, makeJobDirs } from './job-dir.js'
export type { JobPaths } from './job-dir.js'
export { extractBundle, safeEntryPath } from './bundle.js'
export type { ExtractBundleOptions, ExtractedBundle } from './bundle.js'
export { artifactStream, cleanupArtifacts } from './artifacts.js'
export type { ArtifactCleanupOptions } from './artifacts.js'
export type { GpuVendorKind, JobExit, JobRunner, RecordedJob, RunningJob, RunRequest } from './runner.js'
export { ProcessRunner, gpuVisibility, jobEnvironment, readExitCodeFile, WRAPPER_SCRIPT } from './process-runner.js'
export type { JobAccount, ProcessRunnerOptions } from './process-runner.js'
export { DockerRunner, dockerRunArgs, containerName, CONTAINER_PATHS, LEASE_LABEL } from './docker-runner.js'
export type { DockerRunnerOptions, DockerRunTarget } from './docker-runner.js'
export {
  NO_NVIDIA_RUNTIME, PullTally, checkDockerReadiness, imageAllowed, inspectImage, normalizeBusId, nvidiaProblem, pullImage, pullQuery, renderNode, withDefaultTag
} from './docker-engine.js'
export type { DockerCli, DockerInfo, DockerReadiness, LocalImage, PullLimits, PullMessage, ResolvedImage } from './docker-engine.js'
export { LeaseMeter, aggregateSamples, closeUsagePeriod } from './meter.js'
export type { LeaseMeterComponents, LeaseMeterOptions, MeteredLease, PeriodStats, ReportSigning } from './meter.js'
export { acceptVoucher, checkVoucher } from './voucher.js'
export type { AcceptedVoucher, VoucherCheckContext } from './voucher.js'
export { JobEventLog, DEFAULT_EVENT_HISTORY } from './job.js'
export type { EventLogState, JobEventListener, JobEventLogOptions, JobOutcome } from './job.js'
export { EVENTS_FILE, decodeStoredEvent, encodeStoredEvent, readStoredEvents, repairEventFile } from './event-file.js'
export type { StoredJobEvent } from './event-file.js'
export { Job, JobManager, pathsFromJobDir } from './job-manager.js'
export type { JobManagerComponents, JobManagerOptions, LeaseEndedEvent, TerminationReason } from './job-manager.js'
export { JobLogTailer } from './log-tailer.js'
export type { TailEvents, TailStart } from './log-tailer.js'
export { recoverLeases } from './recovery.js'
export type { RecoverLeasesOptions, RecoveryResult } from './recovery.js'
export { simulatedGpuSampler } from './simulated-sampler.js'
