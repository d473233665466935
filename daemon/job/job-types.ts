/**
 * The shapes a job runner shares with the layers around it: its options and its interface (what
 * a session drives), its state snapshot (what a joiner or a re-syncing peer fetches and a
 * checkpoint stores), the transport it talks through, the events it reports and its result.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { ControlDecision, JobPhase, MembershipState } from '../../protocols/job/job-protocol.js'
import type { Logger } from '../logger.js'
import type { MembershipView } from '../membership/membership-view.js'
import type { StageRecorder } from '../metrics/stage-metrics.js'
import type { EvaluationSummary } from '../training/evaluate.js'
import type { JobRuntime } from '../training/job-runtime.js'
import type { InboundGradient, OutboundGradient, StepReport } from '../training/sync-trainer.js'
import type { EpochRecord, StopReason, TrainingProgress } from '../training/training-state.js'
import type { JobControl, JobControlNetwork } from './job-control.js'
import type { StepPace } from './step-pace.js'

/** every state a job's runner can be in (RunnerState), in the order a job passes them */
export const RUNNER_STATES = ['waiting', 'syncing', 'training', 'paused', 'finished', 'failed'] as const
export type RunnerState = typeof RUNNER_STATES[number]

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
  /**
   * the job's latest pause or resume decision when the state was taken (absent: none yet, or a
   * checkpoint from before it was kept): a host resuming from the state restores it, so a job
   * paused and then stopped on every daemon stays paused when they start again
   */
  readonly control?: ControlDecision
  /**
   * a finished job's result as this peer ended it (the step and epoch are the state's, the
   * history the meta's): a report built from the checkpoint shows the test accuracy it ended with
   */
  readonly result?: FinalResult
}

/** What SnapshotMeta keeps of a JobResult. */
export interface FinalResult {
  readonly reason: StopReason
  readonly test: EvaluationSummary
  readonly digest: string
}

/** what a snapshot records besides the training state (SnapshotMeta.control, .result) */
export interface SnapshotExtras {
  readonly control?: ControlDecision
  readonly result?: FinalResult
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

export interface JobRunnerOptions {
  readonly selfId: string
  /** names this peer answers to in an attack config: the demo's or a test's name for it (a daemon started from the CLI has none, so runs no attack) */
  readonly selfNames?: readonly string[]
  readonly runtime: JobRuntime
  readonly network: JobNetwork
  readonly log: Logger
  readonly events?: JobRunnerEvents
  /** this peer hosts the job: it is the first member and decides the start */
  readonly host: boolean
  /** with `snapshot` on a host: its other members restarted too (SessionJobOptions.membersRestarting) */
  readonly membersRestarting?: boolean
  /** start from this state (checkpoint or joined peer) instead of the seed */
  readonly snapshot?: JobSnapshot
  /** run compress/aggregate even on a step this peer is alone in (default: the gradient goes to the optimizer as computed) */
  readonly exchangeAlone?: boolean
  /**
   * log a failed job at error level before done() rejects (default true: a daemon's log is where
   * it is read). False where the caller shows the error itself (`p2pmld train` prints it as its
   * last line; the log line, JSON with a stack when stderr is not a terminal, only repeated it)
   */
  readonly logFailure?: boolean
  /** `peer` was heard from lately (its heartbeats): alive, whatever its gradients do */
  readonly recentlyHeard?: (peer: string) => boolean
  /** `peer`'s port refuses connections (JobWire.refusing): its process died, a step does not wait out its deadline for it */
  readonly unreachable?: (peer: string) => boolean
  /**
   * the snapshot was taken from one member without f+1 vouching for it (a join's fallback): not
   * confirmed until f+1 other members send its digest at a full-digest step (confirmsState)
   */
  readonly provisional?: boolean
  /**
   * ms: the step deadline until this peer has timed steps of its own (StepDeadlinePolicy's
   * warm-up; default 30 s, for the graph compilation of a job's first steps). A joiner of a
   * running job takes its coordinator's current deadline (JoinReply.deadlineMs): with 30 s it
   * waited that long for a member gone meanwhile while the others, on ~2-4 s, evicted it. Not
   * used where the job's deadline is fixed (JobConfig.stepDeadlineMs)
   */
  readonly warmupDeadlineMs?: number
}

export interface JobRunner {
  readonly config: JobConfig
  readonly stages: StageRecorder
  state(): RunnerState
  progress(): Readonly<TrainingProgress>
  membership(): MembershipView
  membershipVersion(): number
  /** members at the current step; before the start, those that count toward it (JobMembership.countedAtStart) */
  liveMembers(): number
  lastReport(): StepReport | undefined
  lastValidation(): EvaluationSummary | undefined
  /**
   * why the step in progress cannot go on, e.g. 'trimmed-mean with f=1 needs 3 gradients, 2 live
   * members'; belowFloor: fewer live members than the rule needs (the job waits for a join);
   * stalled: no step completes until the membership changes or a cut link returns (below the
   * floor, or this peer's side of a cut without the most senior member: step-quorum.ts).
   * Before the start: what the start waits for (minPeers members, or a resumed job's members)
   */
  waitingFor(): { readonly reason: string, readonly belowFloor: boolean, readonly stalled: boolean } | undefined
  /** samples/s, step time and epoch end over this peer's recent steps; undefined until a few were timed, and while the job does not step (paused, waiting: waitingFor) */
  pace(): StepPace | undefined
  result(): JobResult | undefined
  contributorStats(): { last: number, mean: number, min: number, max: number }
  start(): void
  /** finishStep: complete the step in progress first (a clean leave), within timeoutMs (default: two step deadlines, 2-5 s) */
  stop(options?: { finishStep?: boolean, timeoutMs?: number }): Promise<void>
  /** pause / resume the whole job (the coordinator decides the step; see job-control.ts) */
  pause(): Promise<ControlDecision>
  resume(): Promise<ControlDecision>
  /** job-wide pause/resume decisions */
  control(): JobControl
  done(): Promise<JobResult | undefined>
  /** keep an inbound gradient for its step; false when it is a duplicate, too old or too far ahead (one too old: see replay) */
  offerGradient(gradient: InboundGradient): boolean
  /** `from` sent a gradient for `step`, which this peer completed: it is behind; send it this peer's gradient of that step again if still held (SyncTrainer.replay) */
  replay(step: number, from: string): void
  /** coordinator: admit a peer; resolves with the step it joins at (joiners of a running job are admitted in batches: job-membership.ts) */
  admit(peerId: string): Promise<{ effectiveStep: number, membership: MembershipState }>
  /**
   * coordinator, before the start: a peer admitted then whose reply never reached it (it went
   * away) no longer counts toward the start (JobMembership.withdraw); false once the job started
   */
  withdrawAdmission(peerId: string, why: string): boolean
  /** a member announced it leaves from `effectiveStep`; false when ignored (JobMembership.memberLeaving) */
  memberLeaving(peerId: string, effectiveStep: number): boolean
  /** whether `peerId` decides for the job as this peer sees it: its membership announcements and pause/resume decisions are adopted (JobMembership.mayAnnounce) */
  mayDecideForJob(peerId: string): boolean
  /** a coordinator's membership announcement */
  adoptMembership(state: MembershipState): boolean
  /** snapshot of the state at the start of a step >= minStep (waits until the loop gets there) */
  /** `requester`: the peer asking, when known; `range`: for one range of it (state-at-step.ts keeps that state for the other ranges) */
  snapshotAt(minStep: number, signal?: AbortSignal, requester?: string, range?: boolean): Promise<JobSnapshot>
  /** parameter digest at the start of a step >= minStep (waits like snapshotAt) */
  digestAt(minStep: number, signal?: AbortSignal): Promise<DigestAtStep>
  /** false while a provisional state (JobRunnerOptions.provisional) awaits f+1 members' digests */
  stateConfirmed(): boolean
  currentSnapshot(): JobSnapshot
  isCoordinator(): boolean
  /** ms a step waits for the others' gradients now (StepDeadlinePolicy.current) */
  stepDeadlineMs(): number
}
