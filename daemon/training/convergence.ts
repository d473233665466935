/**
 * End-of-epoch decisions from the validation loss: ReduceLROnPlateau and early stopping.
 * Its state travels in checkpoints and to joining peers, so every member decides the same.
 */
import type { JobConfig } from '../../config/job-config.js'
import { EarlyStopping, ReduceLROnPlateau } from '../../ml/schedule/index.js'

export interface ConvergenceDecision {
  readonly lr: number
  readonly stop: boolean
  readonly lrReduced: boolean
}

export interface ConvergenceControl {
  onEpochEnd(validationLoss: number, lr: number): ConvergenceDecision
  toJSON(): unknown
}

export function createConvergenceControl(config: JobConfig, saved?: unknown): ConvergenceControl {
  const state = saved as { plateau?: unknown, earlyStopping?: unknown } | undefined
  const plateau = state?.plateau !== undefined
    ? ReduceLROnPlateau.fromJSON(config.lrSchedule, state.plateau as never)
    : new ReduceLROnPlateau(config.lrSchedule)
  const early = state?.earlyStopping !== undefined
    ? EarlyStopping.fromJSON(config.earlyStopping, state.earlyStopping as never)
    : new EarlyStopping(config.earlyStopping)
  return {
    onEpochEnd(validationLoss: number, lr: number): ConvergenceDecision {
      const next = plateau.step(validationLoss, lr)
      const stop = config.earlyStopping.patience > 0 && early.step(validationLoss)
      return { lr: next, stop, lrReduced: next < lr }
    },
    toJSON: () => ({ plateau: plateau.toJSON(), earlyStopping: early.toJSON() })
  }
}
