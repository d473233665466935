/**
 * Why an inbound message was refused, as a machine-readable code: counted per reason in metrics
 * and logged. Decoders return a rejection instead of throwing, since untrusted bytes being
 * wrong is expected, not exceptional.
 */
export type RejectReason =
  /** shorter than its header or than the lengths it declares */
  | 'truncated'
  | 'magic'
  | 'version'
  /** a header field out of its range (flags, reserved bytes, id lengths, non-ASCII ids) */
  | 'malformed'
  /** a declared size beyond any sane limit, or an inbound frame over the configured cap */
  | 'too-large'
  /** bytes after the header disagree with the declared payload length */
  | 'payload-length'
  | 'job-id'
  | 'parameter-count'
  | 'codec'
  /** the transport's authenticated sender differs from the sender the header names */
  | 'sender-mismatch'
  /** a second message from one sender for one step */
  | 'duplicate'
  /** gossip message without the author signature gossipsub's StrictSign requires */
  | 'unsigned'
  /** a gossip chunk that does not fit the message it belongs to */
  | 'chunk'
  /** JSON that does not parse or does not match the schema */
  | 'schema'

export const REJECT_REASONS: readonly RejectReason[] = [
  'truncated', 'magic', 'version', 'malformed', 'too-large', 'payload-length', 'job-id',
  'parameter-count', 'codec', 'sender-mismatch', 'duplicate', 'unsigned', 'chunk', 'schema'
]

export interface Rejection {
  readonly ok: false
  readonly reason: RejectReason
  /** for logs: what was wrong, with the offending values */
  readonly detail: string
}

export type Decoded<T> = { readonly ok: true, readonly value: T } | Rejection

export function reject (reason: RejectReason, detail: string): Rejection {
  return { ok: false, reason, detail }
}

/** thrown by encoders (our own bug or bad arguments, never untrusted input) */
export class MessageEncodeError extends Error {
  override name = 'MessageEncodeError'
}

export function emptyRejectionCounts (): Record<RejectReason, number> {
  const counts = {} as Record<RejectReason, number>
  for (const r of REJECT_REASONS) counts[r] = 0
  return counts
}
