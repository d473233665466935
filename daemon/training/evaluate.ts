import type { GradientComputer } from '../../ml/core/types.js'
import type { Dataset } from '../../ml/data/dataset.js'
import { evaluationBatches } from '../../ml/data/dataset.js'

export interface EvaluationSummary {
  readonly loss: number
  readonly accuracy: number
  readonly count: number
}

/** Mean loss and accuracy of `params` over a whole dataset, in fixed order. */
export async function evaluateDataset(
  computer: GradientComputer,
  params: Float32Array,
  dataset: Dataset,
  batchSize: number
): Promise<EvaluationSummary> {
  let lossSum = 0
  let correct = 0
  let count = 0
  for (const batch of evaluationBatches(dataset, batchSize)) {
    const result = await computer.evaluate(params, batch)
    lossSum += result.lossSum
    correct += result.correct
    count += result.count
  }
  return { loss: count === 0 ? NaN : lossSum / count, accuracy: count === 0 ? 0 : correct / count, count }
}
