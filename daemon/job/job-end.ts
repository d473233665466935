/**
 * How a job ends on one peer: closing each epoch (validation, ReduceLROnPlateau, early stopping:
 * epoch-end.ts), agreeing with the other members on the final state once training is over
 * (state-repair.ts), and the final evaluation on the test set, whose result is the job's.
 */
import type { Logger } from '../logger.js'
import type { StageRecorder } from '../metrics/stage-metrics.js'
import { evaluateDataset, type EvaluationSummary } from '../training/evaluate.js'
import type { JobRuntime } from '../training/job-runtime.js'
import { parameterDigest, type EpochRecord, type StopReason } from '../training/training-state.js'
import { closeEpoch, EVALUATION_BATCH } from './epoch-end.js'
import type { JobState } from './job-state.js'
import type { JobResult } from './job-types.js'

export interface JobEndOptions {
  readonly runtime: JobRuntime
  readonly state: JobState
  readonly stages: StageRecorder
  readonly log: Logger
  /** the end-of-job agreement on the final state (StateRepair.agreeOnFinalState) */
  agreeOnFinalState(): Promise<void>
  onEpoch?(record: EpochRecord): void
  /** the job finished on this peer with `result` (the runner's state, announcements, events) */
  onFinished(result: JobResult): void
}

export interface JobEnd {
  /** closes the epoch; `report: false` sends no onEpoch (an epoch this peer reported already). Resolves with whether the job is done */
  endEpoch(options?: { report?: boolean }): Promise<boolean>
  /** training is over: agree on the final state with the others, close its epoch, then finish */
  finishTraining(): Promise<JobResult>
  /** evaluates the parameters on the test set and records the job's result for `reason` */
  finish(reason: StopReason): Promise<JobResult>
  /** the last epoch's validation figures */
  validation(): EvaluationSummary | undefined
  /** the job's result once finished here */
  outcome(): JobResult | undefined
  /** training is over and the peer is agreeing with the others on the final state */
  finalizing(): boolean
  /** an epoch is being closed: the state is changing outside a step */
  inEpochEnd(): boolean
}

export function createJobEnd(options: JobEndOptions): JobEnd {
  const { runtime, state, log } = options
  const config = runtime.config
  const progress = state.progress
  let validation: EvaluationSummary | undefined
  let outcome: JobResult | undefined
  let inEpochEnd = false
  let finalizing = false

  const endEpoch = async ({ report = true } = {}): Promise<boolean> => {
    inEpochEnd = true
    try {
      const closed = await closeEpoch({
        computer: runtime.computer,
        validation: runtime.validation,
        params: state.params(),
        convergence: state.convergence(),
        progress,
        history: state.history(),
        epochs: config.epochs,
        stages: options.stages,
        log,
        onEpoch: report ? options.onEpoch : undefined
      })
      validation = closed.validation
      return closed.done
    } finally {
      inEpochEnd = false
    }
  }

  const finish = async (reason: StopReason): Promise<JobResult> => {
    const params = state.params()
    const test = await evaluateDataset(runtime.computer, params, runtime.test, EVALUATION_BATCH)
    outcome = { reason, test, step: progress.step, epoch: progress.epoch, history: state.history(), digest: parameterDigest(params) }
    options.onFinished(outcome)
    return outcome
  }

  return {
    endEpoch,
    finish,
    async finishTraining() {
      finalizing = true
      await options.agreeOnFinalState()
      // the majority's state can have been served between its last step and that epoch's close
      // (a donor awaits its checkpoint write there): no validation record for the last epoch and an
      // epoch counter one short. Close the epoch here, as the donor did, from the same parameters.
      // This peer closed that epoch on its own parameters before the agreement and reported it
      // then (console, metrics, run report): the record goes into the history, the event does not
      if (progress.cursor > 0) await endEpoch({ report: false })
      return await finish(progress.epoch >= config.epochs ? 'epochs' : 'early-stopping')
    },
    validation: () => validation,
    outcome: () => outcome,
    finalizing: () => finalizing,
    inEpochEnd: () => inEpochEnd
  }
}
