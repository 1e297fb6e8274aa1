// Compiles contracts/*.sol with the pinned solc into artifacts/contracts.json (skipped when that file
// already matches the sources). Run by the package build after `tsc -b`.
import { loadContracts, ARTIFACTS_FILE } from '../dist/index.js'

const started = Date.now()
const artifacts = await loadContracts({ force: process.argv.includes('--force') })
console.log(`contracts: solc ${artifacts.solcVersion}, evm ${artifacts.evmVersion} → ${ARTIFACTS_FILE} (${Date.now() - started} ms)`)
