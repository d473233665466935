/**
 * The shapes of a synchronous step (sync-trainer.ts, async-trainer.ts): what the trainer is
 * given (optimizer, codec, aggregation rule, membership, collectors, transport), what it
 * receives and sends per member, and how a step ended.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { Rng } from '../../ml/core/rng.js'
import type { GradientComputer } from '../../ml/core/types.js'
import type { Dataset } from '../../ml/data/dataset.js'
import type { SliceHeader } from '../../protocols/messages/index.js'
import type { GradientCollector } from '../membership/gradient-collector.js'
import type { MembershipView } from '../membership/membership-view.js'
import type { StageRecorder } from '../metrics/stage-metrics.js'
import type { StepDeadlinePolicy } from './deadline.js'
import type { SlicePlan } from './slice-plan.js'
import type { TrainingProgress } from './training-state.js'

export interface StepOptimizer {
  step(params: Float32Array, gradient: Float32Array, lr: number): void
  /** where the aggregation rule writes the step's gradient, so step() reads it in place */
  gradientBuffer(): Float32Array
  /** where this peer's own gradient is computed, so a step alone reads it in place (Optimizer.localGradientBuffer) */
  localGradientBuffer(): Float32Array
  /** whether every value is finite, at memory speed for the arrays above and the parameters (Optimizer.allFinite) */
  allFinite(values: Float32Array): boolean
}

export interface StepCodec {
  /** `into`: a buffer of at least encodedSize(values.length) bytes to encode into (the result is a view of it) */
  encode(values: Float32Array, rng: Rng, into?: Uint8Array): Uint8Array
  encodedSize(count: number): number
  /** `into`: a buffer the codec may decode into instead of allocating (it returns what it used) */
  decode(bytes: Uint8Array, count: number, into?: Float32Array): Float32Array
}

/** The job's aggregation rule with its configured f (never lowered: see aggregator-cache.ts). */
export interface StepAggregation {
  /** the fewest gradients a step aggregates (2f+1, or 2f+3 for Krum); short of it the step waits */
  readonly minInputs: number
  /** faulty members the rule tolerates */
  readonly f: number
  /** the rule's result, written into `out` when given */
  aggregate(gradients: readonly Float32Array[], out?: Float32Array): Float32Array
  /** e.g. 'trimmed-mean with f=1 needs 3 gradients, 2 live members'; `inputs`: what it aggregates (default 'gradients') */
  describeShortfall(have: number, what: string, inputs?: string): string
}

/** A decoded gradient from a member, as the collector holds it. */
export interface InboundGradient {
  readonly step: number
  readonly sender: string
  readonly digest: string
  /** the whole decoded gradient (empty for a reduce-scatter message: see `sliced`) */
  readonly gradient: Float32Array
  /** a reduce-scatter message: which slices it holds, and those slices decoded (in its run order) */
  readonly sliced?: { readonly header: SliceHeader, readonly parts: readonly Float32Array[] }
}

export interface OutboundGradient {
  readonly step: number
  readonly epoch: number
  readonly digest: string
  readonly payload: Uint8Array
  /** the payload holds these slices (reduce-scatter), not the whole vector */
  readonly slices?: SliceHeader
}

/** exchange reduce-scatter: the step's slicing, and where the replicas' results are collected */
export interface ReduceScatterDeps {
  readonly plan: (members: number) => SlicePlan
  readonly results: GradientCollector<InboundGradient>
}

export interface StepReport {
  readonly step: number
  readonly epoch: number
  readonly members: readonly string[]
  /** senders whose gradients were aggregated, self included */
  readonly contributors: readonly string[]
  /**
   * samples the members trained on at this step, all members' (the pace `status` and the progress
   * lines show): sync, the contributors' batches; async, every member's batch (each computes one a
   * step at its own pace, whether or not this peer's update used it)
   */
  readonly samples: number
  /** members expected at the step that did not send (the coordinator counts these misses toward an eviction) */
  readonly missing: readonly string[]
  /**
   * true for an async step without an averaging round: it waited on nobody, so `missing` is empty
   * without anyone having been heard from, and the miss counts stay as they are (counted as a
   * step everyone attended, they were reset at every such step, and a crashed member of an async
   * job was never evicted)
   */
  readonly missesUncounted?: true
  readonly digest: string
  /** `digest` is the full parameterDigest (an anchor step), not a sample: members vouch by it */
  readonly fullDigest: boolean
  /** digests the other members sent for this step */
  readonly peerDigests: ReadonlyMap<string, string>
  readonly loss: number
  readonly waitedMs: number
  readonly stepMs: number
  readonly epochEnded: boolean
  /** steps done in this epoch and the epoch's length at the current world size (for progress) */
  readonly stepInEpoch: number
  readonly stepsInEpoch: number
}

export interface SyncTrainerDeps {
  readonly selfId: string
  readonly config: JobConfig
  readonly train: Dataset
  readonly computer: GradientComputer
  readonly params: Float32Array
  readonly optimizer: StepOptimizer
  readonly codec: StepCodec
  readonly aggregation: StepAggregation
  readonly progress: TrainingProgress
  /** the job's members by step; coordinatorAt (no suspects): the step's most senior member, the primary partition's tie-breaker (step-quorum.ts) */
  readonly membership: Pick<MembershipView, 'membersAt' | 'isMemberAt' | 'coordinatorAt'>
  /** bumped on every membership change (JobMembership.version); absent: checked at every step */
  membershipVersion?(): number
  readonly collector: GradientCollector<InboundGradient>
  readonly stages: StageRecorder
  readonly deadline: StepDeadlinePolicy
  send(message: OutboundGradient, recipients: readonly string[]): Promise<void>
  /**
   * Why the step cannot go on (undefined once it can): too few live members for the rule's
   * minimum (`stall` 'below-floor': only a join helps), this peer's side of a cut holding half
   * of the members or fewer without the most senior ('cut-off': only the link's return helps,
   * step-quorum.ts), or too few gradients arrived by the deadline (no `stall`)
   */
  onWaiting?(reason: string | undefined, stall?: 'below-floor' | 'cut-off'): void
  /** a deadline round ended short of the gradients the step needs; `missing` had not sent */
  onShortRound?(step: number, members: readonly string[], missing: readonly string[]): void
  /**
   * `peer` is known gone (its port refuses connections: its process died): a step does not wait
   * out its deadline for it, it counts a miss at once (eviction after evictAfterMissedSteps)
   */
  unreachable?(peer: string): boolean
  /** Byzantine behaviour for tests and demos (only when the job names this peer) */
  readonly attack?: (gradient: Float32Array, step: number, recipient?: string) => Float32Array
  /** the attack sends each recipient another gradient (test-only equivocation); it aggregates its honest one */
  readonly equivocates?: boolean
  readonly log: { info(obj: object, msg: string): void, warn(obj: object, msg: string): void, debug(obj: object, msg: string): void }
  /**
   * Run the exchange pipeline (encode, decode, aggregate) also when this peer is the step's only
   * member (default false). Alone, nobody decodes the payload and an aggregate of one gradient is
   * that gradient, so by default the gradient goes to the optimizer as computed: no quantization
   * noise, none of its cost. True reproduces a peer's arithmetic in one process (e.g. to see
   * what a codec costs); the caller should say so in its output.
   */
  readonly exchangeAlone?: boolean
  /** exchange reduce-scatter (absent: every member sends its whole gradient to every other) */
  readonly reduceScatter?: ReduceScatterDeps
}

/**
 * How a step ended: completed; not run because this peer is no member at this step (or the
 * others evicted it while it waited); or given up because members it waited for have finished
 * the step without it and moved on (its gradients for the step were lost): it has to re-sync.
 */
export type StepOutcome =
  | { readonly kind: 'completed', readonly report: StepReport }
  | { readonly kind: 'not-a-member' }
  /** `live`, `missing`: the step's members and those whose gradient never came, as in a short round */
  | { readonly kind: 'behind', readonly step: number, readonly ahead: readonly string[], readonly live: readonly string[], readonly missing: readonly string[] }
  | { readonly kind: 'too-few-members', readonly step: number, readonly live: number }

export interface SyncTrainer {
  runStep(signal?: AbortSignal): Promise<StepOutcome>
  /**
   * `to`, a member of `step`, sent a gradient for that step after this peer completed it: it is
   * behind (a re-started member computing the step again, or one whose gradients for it were
   * lost) and may wait for this peer's, which went to its earlier process or was lost. Sends it
   * again, once per member and step, if it is one of the last RECENT_SENDS steps this peer
   * completed and `to` has not sent its gradient for the step in progress (then it is past
   * `step`, re-sending); returns whether it did. Synchronous mode only (absent in asynchronous mode)
   */
  replay?(step: number, to: string): boolean
  stepsPerEpochAt(worldSize: number): number
  /**
   * Asynchronous mode: the parameters the members agreed at the last averaging round (its anchor,
   * the same array until the next round; do not write to it). Between rounds each member's own
   * parameters have drifted from it by its own steps, so this, not those, is the state a member
   * serves (snapshots for joiners, re-syncs and checkpoints) and the digest it answers with: f+1
   * members hold it, and a peer that takes it holds the others' anchor. Absent in synchronous mode,
   * where every member holds the agreed parameters after each step.
   */
  agreedParams?(): Float32Array
}
