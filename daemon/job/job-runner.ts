/**
 * One job on one peer: its training state, membership, the step loop, epoch-end decisions,
 * state snapshots for joining peers and divergence repair. The network is behind JobNetwork,
 * so the same runner works over any transport.
 */
import type { JobConfig } from '../../config/job-config.js'
import { createAggregator } from '../../ml/aggregate/index.js'
import { applyAttack } from '../../ml/attacks/index.js'
import { createCodec } from '../../ml/compress/index.js'
import { createOptimizer, type Optimizer } from '../../ml/optim/index.js'
import { bufferSpecs } from '../../ml/params.js'
import type { Logger } from '../logger.js'
import { createGradientCollector, type GradientCollector } from '../membership/gradient-collector.js'
import { MembershipView } from '../membership/membership-view.js'
import { createStageRecorder, type StageRecorder } from '../metrics/stage-metrics.js'
import { createConvergenceControl, type ConvergenceControl } from '../training/convergence.js'
import { createStepDeadlinePolicy } from '../training/deadline.js'
import { majorityDigest } from '../membership/digest-majority.js'
import { evaluateDataset, type EvaluationSummary } from '../training/evaluate.js'
import type { JobRuntime } from '../training/job-runtime.js'
import { createSyncTrainer, describeAttack, type InboundGradient, type OutboundGradient, type StepAggregator, type StepReport, type SyncTrainer } from '../training/sync-trainer.js'
import { parameterDigest, type EpochRecord, type StopReason, type TrainingProgress } from '../training/training-state.js'
import type { MembershipState } from '../../protocols/job/job-protocol.js'
import type { JobPhase } from '../../protocols/job/job-protocol.js'

export type RunnerState = 'waiting' | 'syncing' | 'training' | 'paused' | 'finished' | 'failed'

export interface JobSnapshot {
  readonly jobConfig: JobConfig
  readonly step: number
  readonly epoch: number
  readonly cursor: number
  readonly meta: SnapshotMeta
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

export interface JobNetwork {
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
  /** names this peer answers to in an attack config (its id, and a demo name) */
  readonly selfNames?: readonly string[]
  readonly runtime: JobRuntime
  readonly network: JobNetwork
  readonly log: Logger
  readonly events?: JobRunnerEvents
  /** this peer hosts the job: it is the first member and decides the start */
  readonly host: boolean
  /** start from this state (checkpoint or joined peer) instead of the seed */
  readonly snapshot?: JobSnapshot
}

export interface JobRunner {
  readonly config: JobConfig
  readonly stages: StageRecorder
  state(): RunnerState
  progress(): Readonly<TrainingProgress>
  membership(): MembershipView
  membershipVersion(): number
  lastReport(): StepReport | undefined
  lastValidation(): EvaluationSummary | undefined
  result(): JobResult | undefined
  contributorStats(): { last: number, mean: number, min: number, max: number }
  start(): void
  /** finishStep: complete the step in progress first (a clean leave), within timeoutMs */
  stop(options?: { finishStep?: boolean, timeoutMs?: number }): Promise<void>
  pause(): void
  resume(): void
  done(): Promise<JobResult | undefined>
  offerGradient(gradient: InboundGradient): boolean
  /** coordinator: admit a peer; returns the step it joins at */
  admit(peerId: string): { effectiveStep: number, membership: MembershipState }
  /** a member announced it leaves from `effectiveStep` */
  memberLeaving(peerId: string, effectiveStep: number): void
  /** a coordinator's membership announcement */
  adoptMembership(state: MembershipState): boolean
  /** snapshot of the state at the start of a step >= minStep (waits until the loop gets there) */
  snapshotAt(minStep: number, signal?: AbortSignal): Promise<JobSnapshot>
  /** parameter digest at the start of a step >= minStep (waits like snapshotAt) */
  digestAt(minStep: number, signal?: AbortSignal): Promise<DigestAtStep>
  currentSnapshot(): JobSnapshot
  isCoordinator(): boolean
}

/** steps between a join/eviction decision and the step it takes effect (time for the news to spread) */
const MEMBERSHIP_MARGIN = 2
/**
 * How often the coordinator repeats the membership while training. On a timer, not between
 * steps: a member that missed the start announcement (gossip to a peer that just subscribed)
 * would otherwise wait out the whole first step's deadline.
 */
const ANNOUNCE_EVERY_MS = 1000
/** bounds on how long the end-of-job digest agreement waits for members still finishing */
const FINAL_AGREEMENT_MIN_MS = 5_000
const FINAL_AGREEMENT_MAX_MS = 120_000
const FINAL_AGREEMENT_TRIES = 4

export function createJobRunner(options: JobRunnerOptions): JobRunner {
  const { runtime, log, selfId } = options
  const config = runtime.config
  const n = runtime.model.layout.totalSize
  const stages = createStageRecorder()
  const codec = createCodec(config.compression)
  // BatchNorm running statistics ride in the parameter vector and are averaged, not trained
  const optimizer: Optimizer = createOptimizer(config.optimizer, n, bufferSpecs(runtime.model.layout))
  const collector: GradientCollector<InboundGradient> = createGradientCollector({ maxStepsAhead: 8 })

  let params: Float32Array
  let membership: MembershipView
  let membershipVersion = 0
  let convergence: ConvergenceControl
  let history: EpochRecord[] = []
  let finishedFromSnapshot = false
  const progress: TrainingProgress = { step: 0, epoch: 0, cursor: 0, lr: config.optimizer.lr, epochLossSum: 0, epochLossCount: 0 }

  const loadSnapshot = (snap: JobSnapshot): void => {
    if (snap.params.length !== n) throw new Error(`snapshot has ${snap.params.length} parameters, model ${config.model} has ${n}`)
    params = snap.params
    optimizer.importState(snap.optimizerState)
    progress.step = snap.step
    progress.epoch = snap.epoch
    progress.cursor = snap.cursor
    progress.lr = snap.meta.lr
    progress.epochLossSum = snap.meta.epochLossSum
    progress.epochLossCount = snap.meta.epochLossCount
    convergence = createConvergenceControl(config, snap.meta.convergence)
    history = [...snap.meta.history]
    const adopted = MembershipView.fromSnapshot(snap.meta.membership)
    if (membership === undefined || snap.meta.membership.version >= membershipVersion) {
      membership = adopted
      membershipVersion = snap.meta.membership.version
    }
    finishedFromSnapshot = snap.meta.finished
    collector.discardBefore(snap.step)
  }

  membership = new MembershipView()
  if (options.snapshot !== undefined) {
    loadSnapshot(options.snapshot)
  } else {
    params = runtime.model.initParameters(config.seed)
    convergence = createConvergenceControl(config)
    if (options.host) membership.join(selfId, 0)
  }

  const aggregators = new Map<number, StepAggregator>()
  const warnedCounts = new Set<number>()
  const aggregatorFor = (count: number): StepAggregator => {
    // with too few gradients for the configured f, tolerate fewer faults rather than stop
    const rule = config.aggregation.rule
    const maxF = rule === 'krum' || rule === 'multi-krum' ? Math.floor((count - 3) / 2) : Math.floor((count - 1) / 2)
    const f = Math.max(0, Math.min(config.aggregation.f, maxF))
    const effectiveRule = (rule === 'krum' || rule === 'multi-krum') && count < 3 ? 'mean' : rule
    const key = f * 100 + (effectiveRule === rule ? 0 : 1)
    if (f < config.aggregation.f && !warnedCounts.has(count)) warnedCounts.add(count) && log.warn({ rule, configuredF: config.aggregation.f, f, inputs: count }, 'too few gradients for the configured f: tolerating fewer faulty peers this step')
    let agg = aggregators.get(key)
    if (agg === undefined) {
      agg = createAggregator({ ...config.aggregation, rule: effectiveRule, f })
      aggregators.set(key, agg)
    }
    return agg
  }

  const attack = describeAttack(config.attack, [selfId, ...(options.selfNames ?? [])])
  if (attack !== undefined) log.warn({ attack }, 'this peer runs a test-only Byzantine attack')

  const deadline = createStepDeadlinePolicy({ fixedMs: config.stepDeadlineMs })
  let trainer: SyncTrainer
  const buildTrainer = (): SyncTrainer => createSyncTrainer({
    selfId,
    config,
    train: runtime.train,
    computer: runtime.computer,
    params,
    optimizer,
    codec,
    aggregatorFor,
    progress,
    membership: { membersAt: (s) => membership.membersAt(s), isMemberAt: (id, s) => membership.isMemberAt(id, s) },
    collector,
    stages,
    deadline,
    send: (message, recipients) => options.network.sendGradient(message, recipients),
    attack: attack === undefined ? undefined : (g, step) => applyAttack(attack, g, { step, seed: config.seed }),
    log
  })
  trainer = buildTrainer()

  let runnerState: RunnerState = options.snapshot === undefined && !options.host ? 'syncing' : 'waiting'
  let abort = new AbortController()
  let paused: PromiseWithResolvers<void> | undefined
  let loop: Promise<JobResult | undefined> | undefined
  let announcer: NodeJS.Timeout | undefined
  let report: StepReport | undefined
  let validation: EvaluationSummary | undefined
  let outcome: JobResult | undefined
  const misses = new Map<string, number>()
  const contributorCounts: number[] = []
  let inEpochEnd = false
  /** training is over; the peer is agreeing with the others on the final state */
  let finalizing = false
  let stopAfterStep = false
  /** served synchronously once the loop is at minStep, so the state cannot move in between */
  const stepWaiters: Array<{ minStep: number, serve: () => void }> = []

  const meta = (): SnapshotMeta => ({
    lr: progress.lr,
    epochLossSum: progress.epochLossSum,
    epochLossCount: progress.epochLossCount,
    convergence: convergence.toJSON(),
    membership: { version: membershipVersion, ...membership.toSnapshot() },
    history: [...history],
    finished: outcome !== undefined || finalizing
  })

  const currentSnapshot = (): JobSnapshot => ({
    jobConfig: config,
    step: progress.step,
    epoch: progress.epoch,
    cursor: progress.cursor,
    meta: meta(),
    params: params.slice(),
    optimizerState: optimizer.exportState().slice()
  })

  const serveStepWaiters = (): void => {
    for (let i = stepWaiters.length - 1; i >= 0; i--) {
      if (stepWaiters[i].minStep <= progress.step || runnerState === 'finished') {
        stepWaiters[i].serve()
        stepWaiters.splice(i, 1)
      }
    }
  }

  /** `read()` of the state at the start of a step >= minStep, once the loop gets there */
  const readAt = <T>(minStep: number, read: () => T, signal?: AbortSignal): Promise<T> => {
    // parameters only change in the synchronous aggregate-update block, so outside the
    // epoch-end bookkeeping the state is always that of the start of progress.step
    if (minStep <= progress.step && !inEpochEnd) return Promise.resolve(read())
    return new Promise((resolve, reject) => {
      const waiter = { minStep, serve: () => resolve(read()) }
      stepWaiters.push(waiter)
      signal?.addEventListener('abort', () => {
        const i = stepWaiters.indexOf(waiter)
        if (i >= 0) stepWaiters.splice(i, 1)
        reject(signal.reason)
      }, { once: true })
    })
  }

  const announce = (): void => {
    const phase: JobPhase = runnerState === 'finished' ? 'finished' : runnerState === 'waiting' ? 'waiting' : 'training'
    options.network.announceMembership({ version: membershipVersion, ...membership.toSnapshot() }, progress.step, phase).catch((error: unknown) => {
      log.debug({ err: error }, 'membership announcement failed')
    })
  }

  const isCoordinator = (): boolean => {
    const suspected = new Set([...misses.entries()].filter(([, m]) => m > 0).map(([id]) => id))
    return membership.coordinatorAt(progress.step, suspected) === selfId
  }

  const waitForStart = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      const members = membership.membersAt(0)
      if (progress.step > 0 || (members.length >= config.minPeers && members.includes(selfId) && membershipVersion > 0) || (options.host && config.minPeers <= 1)) return
      if (options.host && members.length >= config.minPeers) {
        membershipVersion++
        announce()
        return
      }
      if (options.host) announce()
      await sleep(250, abort.signal)
    }
  }

  /** Returns whether the state was replaced by a majority member's (a re-sync). */
  const checkDivergence = async (r: StepReport): Promise<boolean> => {
    if (r.peerDigests.size === 0) return false
    const majority = majorityDigest(new Map([...r.peerDigests, [selfId, r.digest]]), membership.seniority())
    if (majority.digest === r.digest) return false
    log.warn({ step: r.step, own: r.digest, majority: majority.digest, holders: majority.holders }, 'parameters diverged from the majority: re-syncing state')
    const source = majority.holders[0]
    try {
      loadSnapshot(await options.network.fetchSnapshot(source, progress.step))
    } catch (error) {
      // the divergence is still visible at the next step, which tries again
      log.warn({ step: r.step, source, err: (error as Error).message }, 'state re-sync failed: training on, retrying at the next step')
      return false
    }
    trainer = buildTrainer()
    return true
  }

  /** Members finished `step` without this peer and went on: fetch the state they are at. */
  const catchUp = async (step: number, ahead: readonly string[]): Promise<void> => {
    const seniority = membership.seniority()
    const sources = [...ahead].sort((a, b) => seniority.indexOf(a) - seniority.indexOf(b))
    log.warn({ step, ahead: sources }, 'members finished this step without this peer: re-syncing to catch up')
    for (const source of sources) {
      try {
        loadSnapshot(await options.network.fetchSnapshot(source, step + 1))
        trainer = buildTrainer()
        return
      } catch (error) {
        log.warn({ step, source, err: (error as Error).message }, 'catch-up re-sync failed: trying the next member')
      }
    }
    // nobody could serve a state: the next attempt at the step runs it again
    await sleep(500, abort.signal)
  }

  /**
   * The last step's digests reach no later step, so a gradient lost there (or a re-sync that
   * jumped to a later step near the end) would leave members finishing with different
   * parameters. Before finishing, ask every member of the last step for its digest at this
   * step and re-sync to the majority's state if this peer's differs.
   */
  const agreeOnFinalState = async (): Promise<void> => {
    const step = progress.step
    const own = parameterDigest(params)
    const others = membership.membersAt(step - 1).filter((id) => id !== selfId)
    if (others.length === 0) return
    const budgetMs = Math.min(FINAL_AGREEMENT_MAX_MS, Math.max(FINAL_AGREEMENT_MIN_MS, 3 * deadline.current()))
    const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(budgetMs)])
    const digests = new Map<string, string>([[selfId, own]])
    await Promise.all(others.map(async (peer) => {
      // a member still finishing answers when it gets there (the server waits); one that cannot
      // be asked (gone after finishing, or crashed) is tried a few times, not for the whole budget
      for (let attempt = 0; attempt < FINAL_AGREEMENT_TRIES && !signal.aborted; attempt++) {
        try {
          const answer = await options.network.queryDigest(peer, step, signal)
          // a member past this step went on (it decided differently at the epoch end): not a vote
          if (answer.step === step) digests.set(peer, answer.digest)
          return
        } catch {
          await sleep(200 * 2 ** attempt, signal)
        }
      }
    }))
    if (abort.signal.aborted) return
    const unanswered = others.filter((id) => !digests.has(id))
    const majority = majorityDigest(digests, membership.seniority())
    if (majority.digest === own) {
      log.info({ step, digest: own, agreeing: majority.holders.length, of: others.length + 1, unanswered }, 'final parameters agree with the majority')
      return
    }
    log.warn({ step, own, majority: majority.digest, holders: majority.holders, unanswered }, 'final parameters differ from the majority: re-syncing state')
    for (const source of majority.holders) {
      try {
        const snap = await options.network.fetchSnapshot(source, step)
        if (snap.step !== step || parameterDigest(snap.params) !== majority.digest) {
          log.warn({ source, step: snap.step }, 'the majority member sent another state than it announced: trying the next holder')
          continue
        }
        loadSnapshot(snap)
        return
      } catch (error) {
        log.warn({ source, err: (error as Error).message }, 'final re-sync failed: trying the next holder')
      }
    }
    log.error({ step, own, majority: majority.digest }, 'could not re-sync to the majority\'s final parameters: finishing with this peer\'s own')
  }

  const finishTraining = async (): Promise<JobResult> => {
    finalizing = true
    await agreeOnFinalState()
    return await finish(progress.epoch >= config.epochs ? 'epochs' : 'early-stopping')
  }

  const evictMissing = (r: StepReport): void => {
    for (const member of r.members) {
      if (member === selfId) continue
      const count = r.missing.includes(member) ? (misses.get(member) ?? 0) + 1 : 0
      misses.set(member, count)
    }
    if (!isCoordinator()) return
    let changed = false
    for (const [peer, count] of misses) {
      if (count >= config.evictAfterMissedSteps && membership.isKnown(peer, progress.step)) {
        log.warn({ peer, missedSteps: count, fromStep: progress.step }, 'evicting a member that missed too many steps')
        changed = membership.leave(peer, progress.step) || changed
        collector.forget(peer)
        misses.delete(peer)
      }
    }
    if (changed) {
      membershipVersion++
      announce()
    }
  }

  const endEpoch = async (): Promise<boolean> => {
    inEpochEnd = true
    try {
      return await closeEpoch()
    } finally {
      inEpochEnd = false
    }
  }

  const closeEpoch = async (): Promise<boolean> => {
    const started = performance.now()
    const summary = await stages.time('validate', () => evaluateDataset(runtime.computer, params, runtime.validation, 256))
    validation = summary
    const decision = convergence.onEpochEnd(summary.loss, progress.lr)
    const record: EpochRecord = {
      epoch: progress.epoch,
      step: progress.step,
      trainLoss: progress.epochLossCount === 0 ? NaN : progress.epochLossSum / progress.epochLossCount,
      validationLoss: summary.loss,
      validationAccuracy: summary.accuracy,
      lr: progress.lr,
      durationMs: performance.now() - started
    }
    history.push(record)
    options.events?.onEpoch?.(record)
    if (decision.lrReduced) log.info({ epoch: progress.epoch, lr: decision.lr }, 'validation loss plateaued: learning rate reduced')
    progress.lr = decision.lr
    progress.epoch += 1
    progress.cursor = 0
    progress.epochLossSum = 0
    progress.epochLossCount = 0
    if (decision.stop) log.info({ epoch: record.epoch }, 'early stopping: validation loss stopped improving')
    return decision.stop || progress.epoch >= config.epochs
  }

  const finish = async (reason: StopReason): Promise<JobResult> => {
    const test = await evaluateDataset(runtime.computer, params, runtime.test, 256)
    runnerState = 'finished'
    outcome = { reason, test, step: progress.step, epoch: progress.epoch, history, digest: parameterDigest(params) }
    serveStepWaiters()
    announce()
    options.events?.onFinished?.(outcome)
    return outcome
  }

  const run = async (): Promise<JobResult | undefined> => {
    try {
      if (finishedFromSnapshot) return await finish('epochs')
      if (runnerState === 'waiting') await waitForStart()
      runnerState = 'training'
      while (!abort.signal.aborted) {
        if (stopAfterStep) return undefined
        if (paused !== undefined) {
          runnerState = 'paused'
          await Promise.race([paused.promise, sleep(1e9, abort.signal)])
          if (abort.signal.aborted) break
          runnerState = 'training'
        }
        serveStepWaiters()
        // re-synced from a member that had finished (or was agreeing on its final state)
        if (finishedFromSnapshot || progress.epoch >= config.epochs) return await finishTraining()
        if (trainer.stepsPerEpochAt(Math.max(1, membership.membersAt(progress.step).length)) === 0) {
          throw new Error(`the training set (${runtime.train.size} samples) is smaller than one global batch: lower batchSize or use fewer peers`)
        }
        const world = Math.max(1, membership.membersAt(progress.step).length)
        if (progress.cursor > 0 && progress.cursor + world * config.batchSize > runtime.train.size) {
          // the epoch has no room for another step at this world size (members joined since the
          // last step was planned): close it before planning the next one
          if (await endEpoch()) return await finishTraining()
          continue
        }
        const outcome = await trainer.runStep(abort.signal)
        if (outcome.kind === 'behind') {
          await catchUp(outcome.step, outcome.ahead)
          continue
        }
        if (outcome.kind === 'not-a-member') {
          const record = membership.record(selfId)
          // a leave step ahead of ours also means evicted: the trainer gave up on a step the
          // others completed without this peer
          if (record !== undefined && Number.isFinite(record.leaveStep)) {
            log.warn({ step: progress.step, leftAt: record.leaveStep }, 'this peer is no longer a member (evicted): re-joining')
            options.events?.onEvicted?.(progress.step)
            return undefined
          }
          // not a member yet: wait for admission news
          await sleep(200, abort.signal)
          continue
        }
        const r = outcome.report
        report = r
        contributorCounts.push(r.contributors.length)
        if (contributorCounts.length > 10_000) contributorCounts.shift()
        options.events?.onStep?.(r)
        evictMissing(r)
        // a re-synced state carries its own epoch bookkeeping (closing the epoch again would
        // count it twice): plan the next step from it
        if (await checkDivergence(r)) continue
        if (config.checkpointEverySteps > 0 && progress.step % config.checkpointEverySteps === 0) {
          await options.events?.onCheckpoint?.(currentSnapshot())
        }
        if (r.epochEnded && await endEpoch()) return await finishTraining()
      }
      return undefined
    } catch (error) {
      if (abort.signal.aborted) return undefined
      runnerState = 'failed'
      log.error({ err: error }, 'training failed')
      options.events?.onFailed?.(error)
      throw error
    }
  }

  return {
    config,
    stages,
    state: () => runnerState,
    progress: () => progress,
    membership: () => membership,
    membershipVersion: () => membershipVersion,
    lastReport: () => report,
    lastValidation: () => validation,
    result: () => outcome,
    contributorStats() {
      if (contributorCounts.length === 0) return { last: 0, mean: 0, min: 0, max: 0 }
      return {
        last: contributorCounts[contributorCounts.length - 1],
        mean: contributorCounts.reduce((a, b) => a + b, 0) / contributorCounts.length,
        min: Math.min(...contributorCounts),
        max: Math.max(...contributorCounts)
      }
    },
    start() {
      if (loop !== undefined) return
      if (runnerState === 'syncing') runnerState = 'training'
      announcer = setInterval(() => {
        if ((runnerState === 'training' || runnerState === 'paused') && isCoordinator()) announce()
      }, ANNOUNCE_EVERY_MS)
      loop = run()
      loop.catch(() => {}).finally(() => clearInterval(announcer))
    },
    async stop(stopOptions: { finishStep?: boolean, timeoutMs?: number } = {}) {
      if (stopOptions.finishStep === true && runnerState === 'training' && loop !== undefined) {
        // finish the step in progress so every member aggregates the same set for it
        stopAfterStep = true
        let timer: NodeJS.Timeout | undefined
        await Promise.race([
          loop.catch(() => undefined),
          new Promise((resolve) => { timer = setTimeout(resolve, stopOptions.timeoutMs ?? 30_000) })
        ])
        clearTimeout(timer)
      }
      clearInterval(announcer)
      abort.abort(new Error('job stopped'))
      collector.close()
      await loop?.catch(() => undefined)
      if (runnerState !== 'finished' && runnerState !== 'failed') runnerState = 'finished'
      abort = new AbortController()
    },
    pause() {
      paused ??= Promise.withResolvers<void>()
    },
    resume() {
      paused?.resolve()
      paused = undefined
    },
    done: async () => loop,
    offerGradient(gradient: InboundGradient): boolean {
      // kept even from a peer not (yet) known as a member: a membership update may still be on
      // its way, and only the members expected at a step are ever aggregated
      return collector.offer(gradient)
    },
    admit(peerId: string) {
      const effectiveStep = runnerState === 'waiting' ? 0 : progress.step + MEMBERSHIP_MARGIN
      if (membership.join(peerId, effectiveStep)) {
        membershipVersion++
        misses.delete(peerId)
        log.info({ peer: peerId, effectiveStep }, 'admitted a new member')
        if (runnerState !== 'waiting') announce()
      }
      const record = membership.record(peerId)
      return { effectiveStep: record?.joinStep ?? effectiveStep, membership: { version: membershipVersion, ...membership.toSnapshot() } }
    },
    memberLeaving(peerId: string, effectiveStep: number) {
      if (membership.leave(peerId, Math.max(effectiveStep, 0))) {
        log.info({ peer: peerId, effectiveStep }, 'a member is leaving')
        collector.forget(peerId)
        if (isCoordinator()) {
          membershipVersion++
          announce()
        }
      }
    },
    adoptMembership(state: MembershipState): boolean {
      if (state.version <= membershipVersion) return false
      membership = MembershipView.fromSnapshot(state)
      membershipVersion = state.version
      for (const id of [...misses.keys()]) if (!membership.isKnown(id, progress.step)) misses.delete(id)
      return true
    },
    snapshotAt: (minStep, signal) => readAt(minStep, currentSnapshot, signal),
    digestAt: (minStep, signal) => readAt(minStep, () => ({ step: progress.step, digest: parameterDigest(params) }), signal),
    currentSnapshot,
    isCoordinator
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
