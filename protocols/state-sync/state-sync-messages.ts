/**
 * `/p2pmld/state/1.0.0`: the client sends one length-prefixed JSON request frame; the server
 * answers with one JSON status frame, then (if ok) the encoded snapshot split into frames of at
 * most MAX_FRAME_BYTES, then closes its side. A server busy with other transfers may first send
 * queue frames, `{ "queued": position }` (1 = next), whenever the position changes and at least
 * every few seconds while the request waits for a transfer slot.
 *
 * A request with `range: { index, count }` asks for one part of the state's floats only
 * (protocols/snapshot/snapshot-range.ts): its ok status names the floats sent (`range`) and the
 * digest of the whole state at that step (`digest`: stateDigest, over the parameters and the
 * optimizer state), which the joiner checks the reassembled state against. A peer without range support refuses it as 'bad-request'.
 */
import { z } from 'zod'

export const STATE_SYNC_PROTOCOL = '/p2pmld/state/1.0.0'

/** payload limit of one data frame: well under yamux's 4 MiB per-stream read buffer */
export const MAX_FRAME_BYTES = 1024 * 1024
export const MAX_CONTROL_FRAME_BYTES = 64 * 1024

/** a state split over at most this many donors */
export const MAX_STATE_RANGES = 64

export const StateSyncRequestSchema = z.object({
  jobId: z.string().min(1).max(256),
  minStep: z.number().int().nonnegative().optional(),
  /** part `index` of `count` of the state's floats instead of the whole snapshot */
  range: z.object({
    index: z.number().int().nonnegative(),
    count: z.number().int().min(1).max(MAX_STATE_RANGES)
  }).strict().refine((r) => r.index < r.count, { message: 'range index must be below its count' }).optional()
}).strict()
export type StateSyncRequest = z.infer<typeof StateSyncRequestSchema>

export const StateSyncStatusSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    totalBytes: z.number().int().positive(),
    step: z.number().int().nonnegative(),
    /** a range request's answer: the floats sent, [start, end) */
    range: z.object({ start: z.number().int().nonnegative(), end: z.number().int().nonnegative() }).strict().optional(),
    /** a range request's answer: stateDigest (sha256 hex of parameters + optimizer state) at `step` */
    digest: z.string().regex(/^[0-9a-f]{64}$/).optional()
  }),
  z.object({
    ok: z.literal(false),
    reason: z.enum(['unknown-job', 'not-ready', 'busy', 'bad-request', 'internal']),
    message: z.string().max(4096)
  })
])
export type StateSyncStatus = z.infer<typeof StateSyncStatusSchema>

/** while a request waits for a transfer slot: its place in the queue, 1 = next */
export const StateSyncQueuedSchema = z.object({ queued: z.number().int().positive() }).strict()
export type StateSyncQueued = z.infer<typeof StateSyncQueuedSchema>

const encoder = new TextEncoder()

export function encodeJsonFrame (value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value))
}
