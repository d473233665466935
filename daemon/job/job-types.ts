/**
 * The shapes a job runner shares with the layers around it: its state snapshot (what a joiner or
 * a re-syncing peer fetches and a checkpoint stores), the transport it talks through, the events
 * it reports and its result.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { JobPhase, MembershipState } from '../../protocols/job/job-protocol.js'
import type { EvaluationSummary } from '../training/evaluate.js'
import type { JobControlNetwork } from './job-control.js'
import type { OutboundGradient, StepReport } from '../training/sync-trainer.js'
import type { EpochRecord, StopReason } from '../training/training-state.js'

export type RunnerState = 'waiting' | 'syncing' | 'training' | 'paused' | 'finished' | 'failed'

/** The whole training state at the start of `step`: enough to go on from there. */
export interface JobSnapshot {
  readonly jobConfig: JobConfig
  readonly step: number
  readonly epoch: number
  /** samples of the epoch's permutation already used */
  readonly cursor: number
  readonly meta: SnapshotMeta
  /** flat parameters, laid out as the model's ParameterLayout */
  readonly params: Float32Array
  readonly optimizerState: Float32Array
}

export interface SnapshotMeta {
  readonly lr: number
  readonly epochLossSum: number
  readonly epochLossCount: number
  readonly convergence: unknown
  readonly membership: MembershipState
  readonly history: EpochRecord[]
  readonly finished: boolean
}

/** The transport a runner talks through (libp2p today; the broker later). */
export interface JobNetwork extends JobControlNetwork {
  sendGradient(message: OutboundGradient, recipients: readonly string[]): Promise<void>
  announceMembership(membership: MembershipState, step: number, phase: JobPhase): Promise<void>
  /** fetch the job's state as of `minStep` (or later) from `peerId` */
  fetchSnapshot(peerId: string, minStep: number): Promise<JobSnapshot>
  /** the parameter digest `peerId` holds at `minStep` (or later: the reply names its step) */
  queryDigest(peerId: string, minStep: number, signal: AbortSignal): Promise<DigestAtStep>
}

export interface DigestAtStep {
  readonly step: number
  readonly digest: string
}

export interface JobRunnerEvents {
  onStep?(report: StepReport): void
  onEpoch?(record: EpochRecord): void
  onFinished?(result: JobResult): void
  /** training stopped with an error (logged); the job will not finish on this peer */
  onFailed?(error: unknown): void
  /** a job-wide pause holds the job before `step` (`p2pmld job pause`); onResumed once it runs again */
  onPaused?(step: number): void
  onResumed?(step: number): void
  /** this peer was a member and no longer is (evicted or left): it has to re-join to go on */
  onEvicted?(step: number): void
  onCheckpoint?(snapshot: JobSnapshot): Promise<void>
}

export interface JobResult {
  readonly reason: StopReason
  readonly test: EvaluationSummary
  readonly step: number
  readonly epoch: number
  readonly history: readonly EpochRecord[]
  readonly digest: string
}
