/**
 * Envelope headers of the control plane on the broker, one zod schema per kind. Bodies are
 * empty except for gradients (the binary gradient message) and snapshot chunks (snapshot bytes).
 */
import { z } from 'zod'

const Id = z.string().min(1).max(64)

export const ControlHeaderSchema = z.object({ kind: z.literal('control'), msg: z.unknown() }).passthrough()
export const RequestHeaderSchema = z.object({ kind: z.literal('request'), id: Id, req: z.unknown() }).passthrough()
export const ReplyHeaderSchema = z.object({
  kind: z.literal('reply'),
  id: Id,
  ok: z.boolean(),
  result: z.unknown().optional(),
  error: z.string().max(4096).optional()
}).passthrough()
export const SnapshotRequestHeaderSchema = z.object({ kind: z.literal('snapshot-request'), id: Id, minStep: z.number().int().min(0) }).passthrough()
export const SnapshotChunkHeaderSchema = z.object({
  kind: z.literal('snapshot-chunk'),
  id: Id,
  index: z.number().int().min(0),
  last: z.boolean()
}).passthrough()
export const DiscoverHeaderSchema = z.object({ kind: z.literal('discover'), id: Id, replyTo: z.string().min(1).max(255) }).passthrough()
export const DiscoverReplyHeaderSchema = z.object({ kind: z.literal('discover-reply'), id: Id, info: z.unknown() }).passthrough()

/** a request over the broker got no answer in time */
export class BrokerRequestTimeoutError extends Error {
  override name = 'BrokerRequestTimeoutError'
}

/** the peer answered a request with an error */
export class BrokerRequestRefusedError extends Error {
  override name = 'BrokerRequestRefusedError'
}
