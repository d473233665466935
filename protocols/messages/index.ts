export {
  decodeGradientMessage, encodeGradientMessage, gradientMessageSize, maxPayloadBytes, parameterDigest,
  DIGEST_BYTES, GRADIENT_HEADER_BYTES, GRADIENT_MAGIC, GRADIENT_VERSION, MAX_JOB_ID_BYTES, MAX_PARAMETER_COUNT, MAX_SENDER_BYTES, MAX_SLICES, SLICE_HEADER_BYTES,
  type GradientExpectations, type GradientMessage, type SliceHeader
} from './gradient-message.js'
export {
  decodeMembershipMessage, encodeMembershipMessage, MembershipMessageSchema, MemberStateSchema, MAX_MEMBERSHIP_BYTES, MEMBERSHIP_VERSION,
  type MembershipMessage, type MembershipMessageInput, type MemberState
} from './membership-message.js'
export { emptyRejectionCounts, MessageEncodeError, reject, REJECT_REASONS, type Decoded, type RejectReason, type Rejection } from './rejection.js'
