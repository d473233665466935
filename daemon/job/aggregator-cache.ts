/**
 * The aggregation rule every step applies, with the configured f and nothing less. A step short
 * of the rule's minimum (2f+1 for the coordinate-wise rules, 2f+3 for Krum) keeps waiting
 * rather than tolerating fewer faults: with 4 members and quorum 0.5, lowering f let a single
 * Byzantine peer own half of a 2-gradient update.
 */
import { minimumPeersFor, type AggregationConfig } from '../../config/job-config.js'
import { createAggregator } from '../../ml/aggregate/index.js'
import type { StepAggregation } from '../training/sync-trainer.js'

/** The job's rule with its configured f; `minInputs` is the floor below which no step aggregates. */
export function createStepAggregation(aggregation: AggregationConfig): StepAggregation {
  const aggregator = createAggregator(aggregation)
  const minInputs = minimumPeersFor(aggregation.rule, aggregation.f)
  return {
    minInputs,
    f: aggregation.f,
    aggregate: (gradients, out) => aggregator.aggregate(gradients, { out }),
    describeShortfall: (have, what, inputs = 'gradients') => `${aggregation.rule} with f=${aggregation.f} needs ${minInputs} ${inputs}, ${have} ${what}`
  }
}
