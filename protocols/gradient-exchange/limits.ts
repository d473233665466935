import { gradientMessageSize, maxPayloadBytes, MAX_JOB_ID_BYTES, MAX_SENDER_BYTES } from '../messages/gradient-message.js'
import type { GradientExchangeOptions } from './types.js'

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

/**
 * the largest encoded message a job can legitimately produce: fp32 for its parameter count, or
 * its codec's whole-vector size plus what a sliced message adds (its header, and up to a bucket
 * norm per slice where exact ranges shift the codec's buckets: 4 KiB covers 1,000 slices)
 */
export function resolveMaxMessageBytes (options: GradientExchangeOptions): number {
  if (options.maxMessageBytes !== undefined) return options.maxMessageBytes
  const count = options.expect?.parameterCount
  if (count === undefined) return DEFAULT_MAX_MESSAGE_BYTES
  return gradientMessageSize('x'.repeat(MAX_JOB_ID_BYTES), 'x'.repeat(MAX_SENDER_BYTES), (options.expect?.payloadBytes ?? maxPayloadBytes(count)) + 4096, true)
}

export function gradientTopic (jobId: string): string {
  return `/p2pmld/job/${jobId}/gradients/1.0.0`
}
