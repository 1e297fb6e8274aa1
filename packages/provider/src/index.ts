export { ConfigError, ProviderStartError, isOperatorError, type ConfigIssue } from './errors.js'
export { describeFsError } from './fs-errors.js'
export {
  configFromEnv, configKeys, envNameForKey, mergeLayers, parseProviderConfig, providerConfigSchema, settlementEscrow,
  type ConfigLayer, type ProviderConfig
} from './config.js'
export { EscrowGuard, intervalCost, type EscrowAccountReader, type EscrowVerdict, type RenterCommitments } from './escrow-guard.js'
export { SettlementBusyError, SettlementService, privateKeyHex, renterCommitments, runOnchainSettlement } from './settlement-service.js'
export { CONFIG_KEY_DOCS, parseConfigYaml, readConfigFile, renderConfigTemplate } from './config-file.js'
export { askPrice, cumulativeAmount, listPrice, surgeBasisPoints, type PricingPolicy, type Utilisation } from './pricing.js'
export * from './probe/index.js'
export { ApiServer, toJson, type ApiRoute, type ApiServerOptions } from './api.js'
export * from './constants.js'
export { Inventory, isSellable, type InventoryComponents, type InventoryGpu, type InventoryOptions, type InventoryProber } from './inventory.js'
export { buildOffer, hostSummary, pricingPolicy, utilisation, type OfferBuild, type OfferInput } from './offer-builder.js'
export { OfferPublisher, type OfferPublisherComponents, type OfferState } from './offer-publisher.js'
export {
  checkConsistent, checkExpiry, checkMatcher, checkPrice, checkRenter, checkRequirements, computeCapabilityAtLeast,
  fittingGpus, type Rejection
} from './lease-policy.js'
export { LeaseHandler, type LeaseHandlerComponents, type LeaseHandlerStats } from './lease-handler.js'
export { JOB_SERVICE_DEFAULTS, JobService, type JobServiceComponents, type JobServiceOptions } from './job-service.js'
export {
  providerFilePath, readProviderFile, removeProviderFile, writeProviderFile, type ProviderFile
} from './provider-file.js'
export {
  createProvider, type Provider, type ProviderComponents, type ProviderIdentity, type ProviderStatus,
  type RecentError, type RunnerStatus
} from './provider.js'
export type { ActiveLeaseView, LeaseSummary } from './lease-views.js'
export {
  LeaseMeter, closeUsagePeriod, containerName, simulatedGpuSampler,
  type LeaseMeterComponents, type LeaseMeterOptions, type MeteredLease
} from './jobs/index.js'
export { activeOperator, fleetStatusOf, fleetVouchersOf, loadFleetMembership } from './fleet.js'
export { FleetService, FLEET_RATE_LIMIT } from './fleet-service.js'
export type { FleetServiceComponents } from './fleet-service.js'
export { DEFAULT_FLEET_CONCURRENCY, DEFAULT_FLEET_TIMEOUT_MS, FLEET_REQUEST_VALIDITY_MS, askFleet } from './fleet-client.js'
export type { AskFleetOptions, FleetAnswer, FleetTarget } from './fleet-client.js'
export { settleFleet } from './fleet-settle.js'
export type { FleetSettleReport, FleetSettleSkip } from './fleet-settle.js'
