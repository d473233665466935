/**
 * The aggregation seam: every honest peer feeds the step's decoded gradients, sorted by sender
 * id, into the job's rule and gets a bit-identical result. Inputs are trusted here (finite,
 * validated at the wire boundary); only their count and lengths are checked.
 */
import type { AggregationRule } from '../../config/job-config.js'

export interface AggregateOptions {
  /** centered-clip: the point to clip around (e.g. the previous step's aggregate); default: coordinate-wise median */
  readonly centre?: Float32Array
  /** where to write the result (same length as the gradients, none of them); default: a fresh array */
  readonly out?: Float32Array
}

export interface Aggregator {
  readonly rule: AggregationRule
  /** the fewest gradients this rule accepts with the configured f */
  minInputs(): number
  /** options.out, or a fresh array; never one of the inputs */
  aggregate(gradients: readonly Float32Array[], options?: AggregateOptions): Float32Array
}

export class InsufficientPeersError extends Error {
  override name = 'InsufficientPeersError'
  constructor (readonly rule: AggregationRule, readonly f: number, readonly needed: number, readonly got: number, condition: string) {
    super(`${rule} with f=${f} needs at least ${needed} gradients (${condition}), got ${got}; wait for more peers or lower aggregation.f`)
  }
}

export class AggregationInputError extends Error {
  override name = 'AggregationInputError'
}

/** the common length of all gradients; throws when they disagree */
export function commonLength (gradients: readonly Float32Array[], centre?: Float32Array): number {
  const d = gradients[0].length
  for (let i = 1; i < gradients.length; i++) {
    if (gradients[i].length !== d) {
      throw new AggregationInputError(`gradient ${i} has ${gradients[i].length} values but gradient 0 has ${d}; all inputs must use the same parameter layout`)
    }
  }
  if (centre !== undefined && centre.length !== d) {
    throw new AggregationInputError(`the centre has ${centre.length} values but the gradients have ${d}`)
  }
  return d
}
