import type { AggregationConfig } from '../../config/job-config.js'
import { AggregationInputError, commonLength, InsufficientPeersError, type Aggregator } from './aggregator.js'
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

/** `out` when given (d values, none of the inputs), else a fresh array. */
function checkedOut (out: Float32Array | undefined, d: number, gradients: readonly Float32Array[], centre: Float32Array | undefined): Float32Array {
  if (out === undefined) return new Float32Array(d)
  if (out.length !== d) throw new AggregationInputError(`the output array has ${out.length} values but the gradients have ${d}`)
  if (gradients.includes(out) || out === centre) throw new AggregationInputError('the output array is one of the inputs: the rule reads every input while it writes')
  return out
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
      const out = checkedOut(options.out, d, gradients, options.centre)
      switch (rule) {
        case 'mean': return aggregateMean(gradients, d, out)
        case 'trimmed-mean': return aggregateTrimmedMean(gradients, d, f, out)
        case 'median': return aggregateMedian(gradients, d, out)
        case 'mean-around-median': return aggregateMeanAroundMedian(gradients, d, f, out)
        case 'krum': return aggregateKrum(gradients, d, f, out)
        case 'multi-krum': {
          const honest = gradients.length - f
          return aggregateMultiKrum(gradients, d, f, Math.min(config.multiKrumM ?? honest, honest), out)
        }
        case 'centered-clip': {
          // iterates over its inputs and centre while it refines the result: computed apart, then copied
          const clipped = aggregateCenteredClip(gradients, d, { radius: config.clipRadius, iterations: config.clipIterations, centre: options.centre })
          if (options.out === undefined) return clipped
          out.set(clipped)
          return out
        }
      }
    }
  }
}
