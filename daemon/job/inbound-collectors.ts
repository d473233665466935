/**
 * Where a job's inbound gradients wait for the step loop (membership/gradient-collector.ts): one
 * collector for whole gradients, or a reduce-scatter step's parts, and with `exchange:
 * reduce-scatter` a second one for the replicas' results, collected after the parts. A sender
 * cuts its parts and results again when the step's members change under it (an eviction at the
 * step in progress): its new cut replaces the old in either collector.
 */
import type { JobConfig } from '../../config/job-config.js'
import { createGradientCollector, type GradientCollector } from '../membership/gradient-collector.js'
import type { InboundGradient } from '../training/sync-trainer.js'

export interface InboundCollectors {
  /** whole gradients (stream, gossipsub, async) or reduce-scatter parts */
  readonly gradients: GradientCollector<InboundGradient>
  /** reduce-scatter results (absent in the other exchanges) */
  readonly results: GradientCollector<InboundGradient> | undefined
  /** keep an inbound message in the collector of its kind; false when it is a duplicate, too old or too far ahead */
  offer(gradient: InboundGradient): boolean
  /** a member left: stop waiting for it in both */
  forget(peerId: string): void
  /** drop both collectors' messages for steps before `step` */
  discardBefore(step: number): void
  /** wake every waiter (stop) */
  close(): void
}

const recut = (kept: InboundGradient, incoming: InboundGradient): boolean =>
  kept.sliced !== undefined && incoming.sliced !== undefined && kept.sliced.header.total !== incoming.sliced.header.total

export function createInboundCollectors(config: Pick<JobConfig, 'mode' | 'maxStaleness' | 'exchange'>): InboundCollectors {
  // async: peers run at their own pace; two wire tags per step (gradient, averaging round)
  const gradients = createGradientCollector<InboundGradient>({ maxStepsAhead: config.mode === 'async' ? 2 * (config.maxStaleness + 64) : 8, replaces: recut })
  const results = config.exchange === 'reduce-scatter' ? createGradientCollector<InboundGradient>({ maxStepsAhead: 8, replaces: recut }) : undefined
  return {
    gradients,
    results,
    offer: (gradient) => gradient.sliced?.header.phase === 'results' ? results?.offer(gradient) ?? false : gradients.offer(gradient),
    forget(peerId) {
      gradients.forget(peerId)
      results?.forget(peerId)
    },
    discardBefore(step) {
      gradients.discardBefore(step)
      results?.discardBefore(step)
    },
    close() {
      gradients.close()
      results?.close()
    }
  }
}
