import type { AggregationConfig } from '../../config/job-config.js'
import { commonLength, InsufficientPeersError, type Aggregator } from './aggregator.js'
import { aggregateCenteredClip } from './centered-clip.js'
import { aggregateMean, aggregateMedian, aggregateTrimmedMean } from './coordinate-wise.js'
import { aggregateKrum, aggregateMultiKrum } from './krum.js'
import { aggregateMeanAroundMedian } from './mean-around-median.js'

function requirement (config: AggregationConfig): { needed: number, condition: string } {
  const { f } = config
  switch (config.rule) {
    case 'mean': return { needed: 1, condition: 'mean tolerates no faulty input' }
    case 'trimmed-mean': return { needed: 2 * f + 1, condition: 'n > 2f, f trimmed per side' }
    case 'median': return { needed: 2 * f + 1, condition: 'n > 2f, an honest majority per coordinate' }
    case 'mean-around-median': return { needed: 2 * f + 1, condition: 'n > 2f, an honest majority per coordinate' }
    case 'centered-clip': return { needed: 2 * f + 1, condition: 'n > 2f, an honest majority around the median start' }
    case 'krum':
    case 'multi-krum': return { needed: 2 * f + 3, condition: 'n >= 2f + 3' }
  }
}

/**
 * The rule a job's `aggregation` section names. Multi-Krum averages
 * min(multiKrumM ?? n - f, n - f) gradients, so a shrinking membership never averages in more
 * than the honest count allows.
 */
export function createAggregator (config: AggregationConfig): Aggregator {
  const { needed, condition } = requirement(config)
  const { rule, f } = config
  return {
    rule,
    minInputs: () => needed,
    aggregate (gradients, options = {}) {
      if (gradients.length < needed) throw new InsufficientPeersError(rule, f, needed, gradients.length, condition)
      const d = commonLength(gradients, options.centre)
      switch (rule) {
        case 'mean': return aggregateMean(gradients, d)
        case 'trimmed-mean': return aggregateTrimmedMean(gradients, d, f)
        case 'median': return aggregateMedian(gradients, d)
        case 'mean-around-median': return aggregateMeanAroundMedian(gradients, d, f)
        case 'krum': return aggregateKrum(gradients, d, f)
        case 'multi-krum': {
          const honest = gradients.length - f
          return aggregateMultiKrum(gradients, d, f, Math.min(config.multiKrumM ?? honest, honest))
        }
        case 'centered-clip':
          return aggregateCenteredClip(gradients, d, { radius: config.clipRadius, iterations: config.clipIterations, centre: options.centre })
      }
    }
  }
}
