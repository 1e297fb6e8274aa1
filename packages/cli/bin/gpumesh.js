#!/usr/bin/env node
// Process entry point. libp2p 3 needs Promise.withResolvers, which Node 20 lacks.
import 'promise.withresolvers/auto'
import { main } from '../dist/index.js'

process.exitCode = await main(process.argv.slice(2))
