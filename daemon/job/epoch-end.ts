/**
 * The end of an epoch on one peer: validation on the held-out set, ReduceLROnPlateau and early
 * stopping (every member decides the same from the same parameters), and the epoch record.
 */
import type { GradientComputer } from '../../ml/core/types.js'
import type { Dataset } from '../../ml/data/dataset.js'
import type { Logger } from '../logger.js'
import type { StageRecorder } from '../metrics/stage-metrics.js'
import type { ConvergenceControl } from '../training/convergence.js'
import { evaluateDataset, type EvaluationSummary } from '../training/evaluate.js'
import type { EpochRecord, TrainingProgress } from '../training/training-state.js'

/** batch size for validation and test passes (no gradients: memory is the only limit) */
export const EVALUATION_BATCH = 256

export interface EpochEndContext {
  readonly computer: GradientComputer
  readonly validation: Dataset
  readonly params: Float32Array
  readonly convergence: ConvergenceControl
  /** advanced to the next epoch in place */
  readonly progress: TrainingProgress
  /** the epoch's record is appended */
  readonly history: EpochRecord[]
  readonly epochs: number
  readonly stages: StageRecorder
  readonly log: Logger
  onEpoch?(record: EpochRecord): void
}

/** Closes the epoch; `done` when the job has run all its epochs or early stopping says so. */
export async function closeEpoch(ctx: EpochEndContext): Promise<{ done: boolean, validation: EvaluationSummary }> {
  const { progress, log } = ctx
  const started = performance.now()
  const summary = await ctx.stages.time('validate', () => evaluateDataset(ctx.computer, ctx.params, ctx.validation, EVALUATION_BATCH))
  const decision = ctx.convergence.onEpochEnd(summary.loss, progress.lr)
  const record: EpochRecord = {
    epoch: progress.epoch,
    step: progress.step,
    trainLoss: progress.epochLossCount === 0 ? NaN : progress.epochLossSum / progress.epochLossCount,
    validationLoss: summary.loss,
    validationAccuracy: summary.accuracy,
    lr: progress.lr,
    durationMs: performance.now() - started
  }
  ctx.history.push(record)
  ctx.onEpoch?.(record)
  if (decision.lrReduced) log.info({ epoch: progress.epoch + 1, lr: decision.lr }, 'validation loss plateaued: learning rate reduced')
  progress.lr = decision.lr
  progress.epoch += 1
  progress.cursor = 0
  progress.epochLossSum = 0
  progress.epochLossCount = 0
  if (decision.stop) log.info({ epoch: record.epoch + 1 }, 'early stopping: validation loss stopped improving')
  return { done: decision.stop || progress.epoch >= ctx.epochs, validation: summary }
}
