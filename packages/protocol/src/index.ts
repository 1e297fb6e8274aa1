/**
 * @gpumesh/protocol — every wire message of gpumesh, defined once: types, the one encoding, validation,
 * protocol ids, size caps, EIP-712 signing and fast verification. Pure: no I/O.
 */
export * from './constants.js'
export { systemClock, type Clock } from './clock.js'
export * from './errors.js'
export * from './messages.js'
export * from './money.js'
export {
  decodeBookPage, decodeBookQuery, decodeOrderResult, encodeBookPage, encodeBookQuery, encodeOrderResult,
  validateBookPage, validateBookQuery, validateOrderResult
} from './codec.js'
export {
  canonicalJson, decodeJobAttach, decodeJobEvent, decodeJobSubmit, decodeLeaseDecision, decodeLeaseProposal,
  decodeMessage, decodeOffer, decodeOrder, decodeTerminate, decodeVoucher, encodeJobAttach, encodeJobEvent,
  encodeJobSubmit, encodeLeaseDecision, encodeLeaseProposal, encodeMessage, encodeOffer, encodeOrder,
  encodeTerminate, encodeVoucher, jsonReplacer, toWire, validateFleetMembership, validateJobAttach, validateJobAuth,
  validateJobEvent, validateJobSubmit, validateLeaseDecision, validateLeaseProposal, validateLeaseTerms,
  validateMessage, validateOffer, validateOrder, validateOrderRequirements, validatePaymentSignature, validatePeerBinding,
  validateSignedUsageReport, validateTerminate, validateUsageReport, validateVoucher
} from './codec.js'
export {
  decodeArtifactsHeader, decodeArtifactsRequest, decodeJobReply, encodeArtifactsHeader, encodeArtifactsRequest, encodeJobReply,
  validateArtifactsHeader, validateArtifactsRequest, validateJobReply
} from './codec.js'
export type { ValidateOptions } from './codec.js'
export {
  EIP712_TYPE_STRINGS, EIP712_TYPES, ZERO_ADDRESS, bytesToHex, marketDomain, settlementDomain, domainSeparator, eip712Message, ethersDomain, typedData, fleetMembershipDigest,
  hexToBytes, jobAuthDigest, leaseTermsDigest, offerCommitment, offerContentHash, offerDigest, orderDigest,
  peerBindingDigest, requirementsHash, terminateDigest, typeHash, typedDataDigest, usageReportDigest, voucherDigest
} from './eip712.js'
export type {
  FleetMembershipFields, JobAuthFields, OfferCommitmentFields, OrderFields, PeerBindingFields, SignedTypeName,
  TerminateFields, TypedDataField, TypedDataPayload, VoucherFields
} from './eip712.js'
export {
  paymentKeyAddress, publicKeyToAddress, signDigest, signFleetMembership, signJobAuth, signLeaseTerms, signOffer,
  signOrder, signPeerBinding, signTerminate, signUsageReport, signVoucher, verifyDigest, verifyFleetMembership,
  verifyJobAuth, verifyLeaseTerms, verifyOffer, verifyOrder, verifyPeerBinding, verifyTerminate,
  verifyUsageReport, verifyVoucher
} from './signing.js'
export type { PaymentKey } from './signing.js'
export {
  DEFAULT_MAX_CLOCK_SKEW_MS, DEFAULT_MAX_OFFER_LIFETIME_MS, MIN_OFFER_PUBLISH_GAP_MS, OFFER_GOSSIP_RATE_LIMIT, judgeOfferGossip,
  type OfferGossipOptions, type OfferGossipReason, type OfferGossipVerdict, type OfferJudgement
} from './offer-gossip.js'
export {
  FLEET_MAX_BYTES, FLEET_PROTOCOL, FLEET_REQUEST_KINDS, FLEET_REQUEST_MAX_SKEW_MS, FLEET_REQUEST_MAX_VALIDITY_MS,
  FLEET_REVOCATIONS_TOPIC, FLEET_REVOCATION_MAX_SKEW_MS, MAX_FLEET_VOUCHERS, checkFleetRequest,
  decodeFleetRequest, decodeFleetRevocation, decodeFleetStatus, decodeFleetVouchers, encodeFleetRequest,
  encodeFleetRevocation, encodeFleetStatus, encodeFleetVouchers, judgeFleetRevocation, signFleetRequest,
  signFleetRevocation, validateFleetRevocation, verifyFleetRevocation
} from './fleet.js'
export type {
  FleetEarnings, FleetGpuCount, FleetRequest, FleetRequestKind, FleetRequestRefusal, FleetRevocation,
  FleetRevocationVerdict, FleetStatus, FleetVouchers
} from './fleet.js'
export { fleetRequestDigest, fleetRevocationDigest } from './eip712.js'
export type { FleetRequestFields, FleetRevocationFields } from './eip712.js'
