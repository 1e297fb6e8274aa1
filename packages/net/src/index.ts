/**
 * @gpumesh/net — libp2p nodes for gpumesh and the typed request/response and frame-stream helpers.
 * Nothing else in the workspace builds a libp2p node or frames bytes on a stream.
 */
export { createNode } from './node.js'
export type {
  ConnectionMonitorOptions,
  CreateNodeOptions,
  DhtOptions,
  GossipOptions,
  GpumeshNode,
  GpumeshServices,
  MdnsOptions
} from './node.js'
export { publish, gossipMaxMessageBytes, validateTopic } from './gossip.js'
export type { GossipHost, GossipJudge, GossipJudgement, PublishOptions, ValidateTopicOptions } from './gossip.js'
export { generatePeerKey, peerKeyFromBytes, peerKeyToBytes } from './keys.js'
export { handle, request } from './request-response.js'
export type {
  HandleOptions,
  RequestContext,
  RequestHandler,
  RequestOptions,
  RequestTarget,
  StreamHost
} from './request-response.js'
export { handleFrameStreams, openFrameStream, toFrameStream } from './frame-stream.js'
export type {
  FrameStream,
  FrameStreamContext,
  FrameStreamHandler,
  FrameStreamOptions,
  HandleFrameStreamsOptions,
  OpenFrameStreamOptions
} from './frame-stream.js'
export { RepeatingTask } from './repeating-task.js'
export { within } from './deadline.js'
export type { RepeatingTaskLogger, RepeatingTaskOptions } from './repeating-task.js'
export { PeerRateLimiter } from './rate-limiter.js'
export type { RateLimitOptions } from './rate-limiter.js'
export { encodeVarint, encodeFrame, decodeEnvelope, encodeErrorEnvelope, encodeOkEnvelope } from './frame-codec.js'
export type { ResponseEnvelope } from './frame-codec.js'
export {
  FrameStreamError,
  HandlerError,
  ListenError,
  listenReason,
  PeerKeyError,
  PublishError,
  RequestError
} from './errors.js'
export type {
  FrameStreamErrorCode,
  PublishErrorCode,
  RemoteErrorCode,
  RequestErrorCode
} from './errors.js'
export * from './constants.js'
// The libp2p names the roles need (peer ids, addresses, keys): they come from here, never from libp2p.
export { peerIdFromString } from '@libp2p/peer-id'
export { multiaddr } from '@multiformats/multiaddr'
export type { Multiaddr } from '@multiformats/multiaddr'
export type { PeerId, PrivateKey } from '@libp2p/interface'
