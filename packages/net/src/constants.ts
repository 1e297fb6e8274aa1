/** Defaults for @gpumesh/net. Every option that takes one of these can override it. */

/** Listen on every IPv4 interface, on a port the OS picks. */
export const DEFAULT_LISTEN_ADDRESSES: readonly string[] = ['/ip4/0.0.0.0/tcp/0']

/** Loopback range: exempt from libp2p's inbound connection rate limit (5/s per host by default). */
export const LOOPBACK_ALLOW_LIST: readonly string[] = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

/** Protocol id of the private gpumesh DHT; never the public IPFS one. */
export const DHT_PROTOCOL = '/gpumesh/kad/1.0.0'

/** Largest gossip message payload `publish()` accepts (1 MiB). */
export const DEFAULT_GOSSIP_MAX_MESSAGE_BYTES = 1024 * 1024

/** Room for the gossipsub RPC envelope (topic, signature, key, seqno, control) around a payload. */
export const GOSSIP_ENVELOPE_OVERHEAD_BYTES = 64 * 1024

/** Largest request frame a handler accepts by default (1 MiB). */
export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024

/** Largest response frame a client accepts by default (4 MiB). */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024

/** Default deadline of one request: dial, send, handler, answer (10 s). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000

/** Default server-side deadline to read the request and answer it (10 s). */
export const DEFAULT_HANDLER_TIMEOUT_MS = 10_000

/** Inbound streams per protocol per connection, at the same time. */
export const DEFAULT_MAX_INBOUND_STREAMS = 32
/** Requests a client keeps in flight to one peer on one protocol: a quarter of the remote's default inbound cap, since a finished stream still counts there until both sides have closed it. */
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 8

/** Outbound streams per protocol per connection, at the same time. */
export const DEFAULT_MAX_OUTBOUND_STREAMS = 64

/** Requests per peer per window before RATE_LIMITED. */
export const DEFAULT_RATE_LIMIT_POINTS = 100

/** Rate-limit window (1 s). */
export const DEFAULT_RATE_LIMIT_DURATION_MS = 1_000

/** Largest frame on a frame stream by default (1 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024

/** Frames buffered by a frame stream reader before it pauses the remote (back-pressure). */
export const DEFAULT_FRAME_HIGH_WATER_MARK = 16

/** Default deadline of opening a frame stream, and of waiting for the remote to drain a send (30 s). */
export const DEFAULT_FRAME_STREAM_TIMEOUT_MS = 30_000

/**
 * Bytes a paused stream may hold before libp2p resets it. Yamux keeps sending up to its receive window
 * (which grows to 16 MiB) after a pause, so the libp2p default (4 MiB) would reset a paused stream.
 */
export const PAUSED_STREAM_READ_BUFFER_BYTES = 16 * 1024 * 1024

/** Longest error message put on the wire. */
export const MAX_ERROR_MESSAGE_CHARS = 256

/** Wire status byte of a response envelope. */
export const STATUS_OK = 0
export const STATUS_ERROR = 1

/** How often a bootstrap peer that is not connected is dialled again (`bootstrapRedialMs`). */
export const DEFAULT_BOOTSTRAP_REDIAL_MS = 10_000
