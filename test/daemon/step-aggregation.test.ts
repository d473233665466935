/** The job's aggregation rule as the trainers use it: its floor and how a shortfall reads. */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createStepAggregation } from '../../daemon/job/aggregator-cache.js'

describe('step aggregation', () => {
  it('names what fell short: gradients at a step, parameter changes in an async averaging round', () => {
    const rule = createStepAggregation(parseJobConfig({ aggregation: { rule: 'trimmed-mean', f: 1 } }).aggregation)
    expect(rule.minInputs).toBe(3)
    expect(rule.describeShortfall(2, 'arrived')).toBe('trimmed-mean with f=1 needs 3 gradients, 2 arrived')
    // a walk read 'needs 3 gradients' for a round that averages parameter changes
    expect(rule.describeShortfall(1, 'arrived', 'parameter changes')).toBe('trimmed-mean with f=1 needs 3 parameter changes, 1 arrived')
  })
})
