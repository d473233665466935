/**
 * What a job's mode (sync or async) changes outside the step itself: the trainer, what a miss
 * counts, when membership changes and pauses take effect, and which answers vouch for a state.
 */
import type { JobConfig } from '../../config/job-config.js'
import { asyncChangeStep, createAsyncTrainer, gradientTag } from '../training/async-trainer.js'
import { createSyncTrainer } from '../training/sync-trainer.js'
import type { SyncTrainer, SyncTrainerDeps } from '../training/step-types.js'

/** complete averaging rounds an async job times before its deadline follows them */
const ASYNC_DEADLINE_WARMUP_ROUNDS = 2

export interface ModePolicy {
  createTrainer(deps: SyncTrainerDeps): SyncTrainer
  /** what the eviction's log line says a miss is */
  readonly missUnit: 'steps' | 'averaging rounds'
  /** async: joins, evictions and pauses take effect right after an averaging round (asyncChangeStep); empty in sync mode */
  readonly timing: { changeStep?(earliest: number): number }
  /** async: a member past a state's step vouches if it holds its digest (StateRepairOptions.laterStepVouches) */
  readonly laterStepVouches: boolean
  /** complete exchanges timed before the step deadline follows them (DeadlineOptions.warmupSteps): async times rounds only */
  readonly deadlineWarmupSteps?: number
  /**
   * the first wire tag of step t, the unit the gradient collectors count in: t in sync mode; 2t in
   * async (async-trainer.ts: a step's gradient 2t, its averaging round 2t + 1)
   */
  wireTag(step: number): number
}

export function modePolicy(config: JobConfig): ModePolicy {
  if (config.mode === 'sync') return { createTrainer: createSyncTrainer, missUnit: 'steps', timing: {}, laterStepVouches: false, wireTag: (step) => step }
  return {
    createTrainer: createAsyncTrainer,
    missUnit: 'averaging rounds',
    timing: { changeStep: (earliest) => asyncChangeStep(earliest, config.averageEvery) },
    laterStepVouches: true,
    deadlineWarmupSteps: ASYNC_DEADLINE_WARMUP_ROUNDS,
    wireTag: gradientTag
  }
}
