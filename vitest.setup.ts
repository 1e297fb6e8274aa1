// libp2p 3 calls Promise.withResolvers, which Node 20 lacks. Test processes are an entry point, like
// the CLI binary, so the polyfill is installed here and nowhere else below the CLI.
import 'promise.withresolvers/auto'
