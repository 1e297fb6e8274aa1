export { ConfigError, type ConfigIssue } from './errors.js'
export {
  configFromEnv, configKeys, envNameForKey, mergeLayers, parseProviderConfig, providerConfigSchema,
  type ConfigLayer, type ProviderConfig
} from './config.js'
export { CONFIG_KEY_DOCS, parseConfigYaml, readConfigFile, renderConfigTemplate } from './config-file.js'
export { askPrice, cumulativeAmount, listPrice, surgeBasisPoints, type PricingPolicy, type Utilisation } from './pricing.js'
export * from './probe/index.js'
