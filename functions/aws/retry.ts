/** Exponential backoff as the ASL's Retry defines it: IntervalSeconds x BackoffRate^(retry - 1). */
import type { OffloadRetryConfig } from '../../config/offload-config.js'

/** Delay before retry number `retry` (1-based), ms. */
export function retryDelayMs(retry: OffloadRetryConfig, attempt: number): number {
  return 1000 * retry.intervalSeconds * retry.backoffRate ** (attempt - 1)
}
