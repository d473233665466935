/**
 * A job's training state on one peer: the parameters (held in the optimizer's memory, so its
 * steps update them in place), the optimizer state, the progress counters, the LR schedule and
 * early stopping (convergence), and the epoch history. Made from the model's seed or loaded from
 * a snapshot (a checkpoint, a joiner's fetched state, a re-sync); copied into a snapshot.
 */
import type { JobConfig } from '../../config/job-config.js'
import { bufferSpecs } from '../../ml/params.js'
import { createOptimizer, type Optimizer } from '../../ml/optim/index.js'
import type { MembershipState } from '../../protocols/job/job-protocol.js'
import { createConvergenceControl, type ConvergenceControl } from '../training/convergence.js'
import type { JobRuntime } from '../training/job-runtime.js'
import type { EpochRecord, TrainingProgress } from '../training/training-state.js'
import type { JobSnapshot, SnapshotExtras, SnapshotMeta } from './job-types.js'

export interface JobState {
  readonly optimizer: Optimizer
  /** counters the step loop and the trainer advance in place */
  readonly progress: TrainingProgress
  /** the current parameter vector (another array after each load) */
  params(): Float32Array
  convergence(): ConvergenceControl
  /** the epochs closed so far; closing an epoch appends to this array */
  history(): EpochRecord[]
  /** the last snapshot loaded said the job had finished */
  finishedFromSnapshot(): boolean
  /** take over `snap`'s state; throws when its parameter count is not the model's */
  load(snap: JobSnapshot): void
  /** the snapshot meta as of now, with the membership, finished flag, and latest pause/resume decision and result the runner knows */
  meta(membership: MembershipState, finished: boolean, extras?: SnapshotExtras): SnapshotMeta
  /** a copy of the whole state (parameters and optimizer state copied); `params`: these instead of the current ones (async: the agreed ones) */
  snapshot(membership: MembershipState, finished: boolean, params?: Float32Array, extras?: SnapshotExtras): JobSnapshot
}

/** The state at the model's seed (config.seed), or `snapshot`'s when given. */
export function createJobState(config: JobConfig, runtime: JobRuntime, snapshot?: JobSnapshot): JobState {
  const n = runtime.model.layout.totalSize
  // BatchNorm running statistics ride in the parameter vector and are averaged, not trained
  const optimizer: Optimizer = createOptimizer(config.optimizer, n, bufferSpecs(runtime.model.layout))
  const progress: TrainingProgress = { step: 0, epoch: 0, cursor: 0, lr: config.optimizer.lr, epochLossSum: 0, epochLossCount: 0 }
  // a snapshot's parameters replace these at once: the seed's are not computed for it
  let params = snapshot === undefined ? optimizer.hostParameters(runtime.model.initParameters(config.seed)) : new Float32Array(0)
  let convergence = createConvergenceControl(config)
  let history: EpochRecord[] = []
  let finished = false

  const state: JobState = {
    optimizer,
    progress,
    params: () => params,
    convergence: () => convergence,
    history: () => history,
    finishedFromSnapshot: () => finished,
    load(snap) {
      if (snap.params.length !== n) throw new Error(`snapshot has ${snap.params.length} parameters, model ${config.model} has ${n}`)
      // the optimizer's own memory holds the parameters, so its steps update them in place
      params = optimizer.hostParameters(snap.params)
      optimizer.importState(snap.optimizerState)
      progress.step = snap.step
      progress.epoch = snap.epoch
      progress.cursor = snap.cursor
      progress.lr = snap.meta.lr
      progress.epochLossSum = snap.meta.epochLossSum
      progress.epochLossCount = snap.meta.epochLossCount
      convergence = createConvergenceControl(config, snap.meta.convergence)
      history = [...snap.meta.history]
      finished = snap.meta.finished
    },
    meta: (membership, finishedNow, extras = {}) => ({
      lr: progress.lr,
      epochLossSum: progress.epochLossSum,
      epochLossCount: progress.epochLossCount,
      convergence: convergence.toJSON(),
      membership,
      history: [...history],
      finished: finishedNow,
      ...(extras.control === undefined ? {} : { control: extras.control }),
      ...(extras.result === undefined ? {} : { result: extras.result })
    }),
    snapshot: (membership, finishedNow, served = params, extras) => ({
      jobConfig: config,
      step: progress.step,
      epoch: progress.epoch,
      cursor: progress.cursor,
      meta: state.meta(membership, finishedNow, extras),
      params: served.slice(),
      optimizerState: optimizer.exportState().slice()
    })
  }
  if (snapshot !== undefined) state.load(snapshot)
  return state
}
