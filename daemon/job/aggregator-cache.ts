/**
 * The aggregation rule a step applies to the gradients that arrived, one aggregator per
 * effective (rule, f), built once.
 */
import type { AggregationConfig } from '../../config/job-config.js'
import { createAggregator } from '../../ml/aggregate/index.js'
import type { Logger } from '../logger.js'
import type { StepAggregator } from '../training/sync-trainer.js'

/** Returns `aggregatorFor(count)`: the job's rule for `count` inputs. */
export function createAggregatorCache(aggregation: AggregationConfig, log: Logger): (count: number) => StepAggregator {
  const aggregators = new Map<number, StepAggregator>()
  const warnedCounts = new Set<number>()
  return (count) => {
    // with too few gradients for the configured f, tolerate fewer faults rather than stop
    const rule = aggregation.rule
    const maxF = rule === 'krum' || rule === 'multi-krum' ? Math.floor((count - 3) / 2) : Math.floor((count - 1) / 2)
    const f = Math.max(0, Math.min(aggregation.f, maxF))
    const effectiveRule = (rule === 'krum' || rule === 'multi-krum') && count < 3 ? 'mean' : rule
    const key = f * 100 + (effectiveRule === rule ? 0 : 1)
    if (f < aggregation.f && !warnedCounts.has(count)) warnedCounts.add(count) && log.warn({ rule, configuredF: aggregation.f, f, inputs: count }, 'too few gradients for the configured f: tolerating fewer faulty peers this step')
    let agg = aggregators.get(key)
    if (agg === undefined) {
      agg = createAggregator({ ...aggregation, rule: effectiveRule, f })
      aggregators.set(key, agg)
    }
    return agg
  }
}
