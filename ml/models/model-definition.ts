import type { ForwardGraph } from '../autodiff/ir.js'
import type { ParameterLayout } from '../core/types.js'

export interface ModelDefinition {
  readonly name: string
  /** shape of one input sample, e.g. [1, 28, 28] */
  readonly sampleShape: readonly number[]
  readonly numClasses: number
  readonly layout: ParameterLayout
  readonly forward: ForwardGraph
  /** deterministic initial parameters for a seed (every peer of a job starts identical) */
  initParameters(seed: number): Float32Array
  /** what the user should hear about the model before it trains (e.g. an imported one whose output is not logits) */
  readonly warnings?: readonly string[]
}

export class UnknownModelError extends Error {
  override name = 'UnknownModelError'
}
