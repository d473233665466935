/**
 * `/p2pmld/state/1.0.0`: the client sends one length-prefixed JSON request frame; the server
 * answers with one JSON status frame, then (if ok) the encoded snapshot split into frames of at
 * most MAX_FRAME_BYTES, then closes its side. A server busy with other transfers may first send
 * queue frames, `{ "queued": position }` (1 = next), whenever the position changes and at least
 * every few seconds while the request waits for a transfer slot.
 */
import { z } from 'zod'

export const STATE_SYNC_PROTOCOL = '/p2pmld/state/1.0.0'

/** payload limit of one data frame: well under yamux's 4 MiB per-stream read buffer */
export const MAX_FRAME_BYTES = 1024 * 1024
export const MAX_CONTROL_FRAME_BYTES = 64 * 1024

export const StateSyncRequestSchema = z.object({
  jobId: z.string().min(1).max(256),
  minStep: z.number().int().nonnegative().optional()
}).strict()
export type StateSyncRequest = z.infer<typeof StateSyncRequestSchema>

export const StateSyncStatusSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    totalBytes: z.number().int().positive(),
    step: z.number().int().nonnegative()
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
