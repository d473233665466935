/**
 * One job on one peer: the step loop. The concerns around it live beside it: its options and
 * interface (job-types.ts), the training state (job-state.ts), the state served at a step
 * (state-at-step.ts), membership changes (job-membership.ts), divergence repair, catch-up and the
 * end-of-job agreement (state-repair.ts), the epoch's and the job's end (epoch-end.ts,
 * job-end.ts), the aggregation rule (aggregator-cache.ts), what sync and async differ in
 * (mode-policy.ts). The network is behind JobNetwork, so the same runner works over any transport.
 */
import { applyAttack } from '../../ml/attacks/index.js'
import type { JobPhase } from '../../protocols/job/job-protocol.js'
import { createStageRecorder } from '../metrics/stage-metrics.js'
import { createStepDeadlinePolicy } from '../training/deadline.js'
import type { StepReport, SyncTrainer } from '../training/sync-trainer.js'
import { attackOfThisPeer } from '../training/test-attack.js'
import { parameterDigest } from '../training/training-state.js'
import { abortableSleep as sleep } from './abortable-sleep.js'
import { createStepAggregation } from './aggregator-cache.js'
import { createContributorStats } from './contributor-stats.js'
import { createDivergenceRepair } from './divergence-repair.js'
import { createInboundCollectors } from './inbound-collectors.js'
import { createJobControl } from './job-control.js'
import { createJobEnd } from './job-end.js'
import { createJobMembership } from './job-membership.js'
import { createJobState } from './job-state.js'
import { modePolicy } from './mode-policy.js'
import type { JobResult, JobRunner, JobRunnerOptions, JobSnapshot, RunnerState } from './job-types.js'
import { shortRoundMisses } from './short-round-misses.js'
import { createStateAtStep } from './state-at-step.js'
import { confirmsState } from './state-repair.js'
import { createPaceTracker } from './step-pace.js'
import { createWaitReasons } from './wait-reason.js'

export type { DigestAtStep, JobNetwork, JobResult, JobRunner, JobRunnerEvents, JobRunnerOptions, JobSnapshot, RunnerState, SnapshotMeta } from './job-types.js'

/**
 * How often the coordinator repeats the membership while training. On a timer, not between
 * steps: a member that missed the start announcement (gossip to a peer that just subscribed)
 * would otherwise wait out the whole first step's deadline.
 */
const ANNOUNCE_EVERY_MS = 1000
/** the longest a stop waits for the step in progress to finish (a clean leave) before it stops anyway */
const STOP_FINISH_STEP_MAX_MS = 5_000

export function createJobRunner(options: JobRunnerOptions): JobRunner {
  const { runtime, log, selfId } = options
  const config = runtime.config
  const stages = createStageRecorder()
  const codec = runtime.codec
  const mode = modePolicy(config)
  const deadline = createStepDeadlinePolicy({ fixedMs: config.stepDeadlineMs, warmupMs: options.warmupDeadlineMs, warmupSteps: mode.deadlineWarmupSteps })
  const inbound = createInboundCollectors(config)
  const collector = inbound.gradients

  const state = createJobState(config, runtime, options.snapshot)
  const { progress, optimizer } = state

  let runnerState: RunnerState = options.snapshot === undefined && !options.host ? 'syncing' : 'waiting'
  let abort = new AbortController()
  let loop: Promise<JobResult | undefined> | undefined
  let announcer: NodeJS.Timeout | undefined
  let report: StepReport | undefined
  /** a provisional state (options.provisional) is not vouched for until confirmsState */
  let confirmed = options.provisional !== true
  const contributors = createContributorStats()
  const pace = createPaceTracker()
  let stopAfterStep = false

  const members = createJobMembership({
    selfId,
    host: options.host,
    minPeers: config.minPeers,
    evictAfterMissedSteps: config.evictAfterMissedSteps,
    missUnit: mode.missUnit,
    ...mode.timing,
    network: options.network,
    log,
    step: () => progress.step,
    phase: (): JobPhase => runnerState === 'finished' ? 'finished' : runnerState === 'waiting' ? 'waiting' : 'training',
    onRemoved: (peerId) => inbound.forget(peerId),
    ...(options.recentlyHeard === undefined ? {} : { recentlyHeard: options.recentlyHeard })
  })

  const control = createJobControl({
    selfId,
    log,
    network: options.network,
    step: () => progress.step,
    waitingForStart: () => runnerState === 'waiting',
    isCoordinator: () => members.isCoordinator(),
    coordinator: () => members.view().coordinatorAt(progress.step),
    ...mode.timing
  })

  /** the membership and the gradients kept follow a loaded state */
  const followState = (snap: JobSnapshot): void => {
    members.restore(snap.meta.membership)
    // in the collectors' unit: a state past step 136 of an async job put its first rounds' tags
    // (2t + 1) beyond the window, and the joiner dropped every change of them
    inbound.discardBefore(mode.wireTag(snap.step))
  }
  if (options.snapshot !== undefined) {
    followState(options.snapshot)
    if (options.host) {
      members.resumeAsHost(progress.step, options.membersRestarting === true)
      // paused, then stopped on every daemon: a pause is not lifted by a restart
      if (options.snapshot.meta.control !== undefined) control.restore(options.snapshot.meta.control)
    }
  } else if (options.host) {
    members.joinAsHost()
  }

  const attack = attackOfThisPeer(config.attack, options.selfNames ?? [], selfId, log)

  const aggregation = createStepAggregation(config.aggregation)
  /** a step's deadline round ended short: misses as short-round-misses.ts counts them */
  const recordShortRound = (step: number, live: readonly string[], missing: readonly string[]): void => {
    const counted = shortRoundMisses({ step, live, missing, newestStepFrom: (id) => collector.newestStepFrom(id), recentlyHeard: options.recentlyHeard, selfId })
    members.recordShortRound(step, live, counted.missing, counted.lagging)
  }
  /** why the job does not step now (shown by `status`) */
  const waiting = createWaitReasons({
    startWaitReason: () => members.startWaitReason(),
    pendingCollect: () => inbound.results?.pending() ?? collector.pending(),
    awaited: config.mode === 'async' ? 'parameter changes' : 'gradients',
    minInputs: aggregation.minInputs,
    pauseDecided: () => control.pendingPause()
  })
  const buildTrainer = (): SyncTrainer => mode.createTrainer({
    selfId,
    config,
    train: runtime.train,
    computer: runtime.computer,
    params: state.params(),
    optimizer,
    codec,
    aggregation,
    onWaiting: waiting.onWaiting,
    onShortRound: recordShortRound,
    ...(options.unreachable === undefined ? {} : { unreachable: options.unreachable }),
    progress,
    membership: { membersAt: (s) => members.view().membersAt(s), isMemberAt: (id, s) => members.view().isMemberAt(id, s), coordinatorAt: (s) => members.view().coordinatorAt(s) },
    membershipVersion: () => members.version(),
    collector,
    stages,
    deadline,
    send: (message, recipients) => options.network.sendGradient(message, recipients),
    attack: attack === undefined ? undefined : (g, step, recipient) => applyAttack(attack, g, { step, seed: config.seed, recipient }),
    equivocates: attack?.kind === 'equivocate',
    exchangeAlone: options.exchangeAlone,
    ...(runtime.slicePlan !== undefined && inbound.results !== undefined ? { reduceScatter: { plan: runtime.slicePlan, results: inbound.results } } : {}),
    log
  })
  let trainer = buildTrainer()
  /** replace this peer's training state (a re-sync, catch-up or reconciliation) and plan from it */
  const adoptState = (snap: JobSnapshot): void => {
    state.load(snap)
    followState(snap)
    trainer = buildTrainer()
  }

  const { repair, reconciliation } = createDivergenceRepair({
    selfId,
    network: options.network,
    membership: members,
    log,
    f: config.aggregation.f,
    laterStepVouches: mode.laterStepVouches,
    collector,
    wireTag: mode.wireTag,
    deadlineMs: () => deadline.current(),
    signal: () => abort.signal,
    step: () => progress.step,
    params: () => state.params(),
    own: () => currentSnapshot(),
    adopt: adoptState,
    serveWaiting: () => stateAtStep.serveWaiting()
  })

  const ending = createJobEnd({
    runtime,
    state,
    stages,
    log,
    agreeOnFinalState: async () => { await repair.agreeOnFinalState() },
    onEpoch: options.events?.onEpoch,
    onFinished: (result) => {
      runnerState = 'finished'
      stateAtStep.serveWaiting()
      members.announce()
      options.events?.onFinished?.(result)
    }
  })
  const { endEpoch, finishTraining } = ending

  // async: the parameters the members agreed at the last averaging round (SyncTrainer.agreedParams)
  const currentSnapshot = (): JobSnapshot => {
    const outcome = ending.outcome()
    const result = outcome === undefined ? undefined : { reason: outcome.reason, test: outcome.test, digest: outcome.digest }
    return state.snapshot(members.state(), outcome !== undefined || ending.finalizing(), trainer.agreedParams?.(), { control: control.latest(), result })
  }

  const stateAtStep = createStateAtStep({
    step: () => progress.step,
    finished: () => runnerState === 'finished',
    // parameters only change in the synchronous aggregate-update block, so outside the
    // epoch-end bookkeeping the state is always that of the start of progress.step
    changing: () => ending.inEpochEnd(),
    snapshot: currentSnapshot,
    digest: () => parameterDigest(trainer.agreedParams?.() ?? state.params()),
    // a reconciling member waits until the others have its state before it changes it
    onSnapshotServed: (minStep, requester) => reconciliation.served(minStep, requester)
  })

  /** this peer's membership ends at or before `step`: the coordinator evicted it */
  const evictedAt = (step: number): boolean => (members.view().record(selfId)?.leaveStep ?? Infinity) <= step
  const leaveEvicted = (): undefined => {
    log.warn({ step: progress.step, leftAt: members.view().record(selfId)?.leaveStep }, 'this peer is no longer a member (evicted): re-joining')
    options.events?.onEvicted?.(progress.step)
    return undefined
  }

  const run = async (): Promise<JobResult | undefined> => {
    try {
      // the reason the members that finished it give (not always 'epochs')
      if (state.finishedFromSnapshot()) return await ending.finish(progress.epoch >= config.epochs ? 'epochs' : 'early-stopping')
      if (runnerState === 'waiting') await members.awaitStart(abort.signal)
      runnerState = 'training'
      while (!abort.signal.aborted) {
        if (stopAfterStep) return undefined
        // a state or membership adopted from the others may end this peer's membership (the side
        // of a cut they evicted, back once the link returns): it re-joins, also while paused
        if (evictedAt(progress.step)) return leaveEvicted()
        if (control.pausedAt(progress.step)) {
          runnerState = 'paused'
          pace.pause()
          options.events?.onPaused?.(progress.step)
          stateAtStep.serveWaiting()
          await control.holdWhilePaused(progress.step, abort.signal, () => !evictedAt(progress.step))
          if (abort.signal.aborted) break
          if (evictedAt(progress.step)) continue
          runnerState = 'training'
          options.events?.onResumed?.(progress.step)
        }
        stateAtStep.serveWaiting()
        // re-synced from a member that had finished (or was agreeing on its final state)
        if (state.finishedFromSnapshot() || progress.epoch >= config.epochs) return await finishTraining()
        const world = Math.max(1, members.view().membersAt(progress.step).length)
        if (trainer.stepsPerEpochAt(world) === 0) {
          throw new Error(`the training set (${runtime.train.size} samples) is smaller than one global batch (batchSize ${config.batchSize} x ${world} members): lower batchSize, use more samples (trainSamples) or fewer peers`)
        }
        if (progress.cursor > 0 && progress.cursor + world * config.batchSize > runtime.train.size) {
          // the epoch has no room for another step at this world size (members joined since the
          // last step was planned): close it before planning the next one
          if (await endEpoch()) return await finishTraining()
          continue
        }
        const outcome = await trainer.runStep(abort.signal)
        if (outcome.kind === 'too-few-members') {
          // visible in `status`; a peer admitted meanwhile joins at this step
          await sleep(250, abort.signal)
          continue
        }
        if (outcome.kind === 'behind') {
          // no state f+1 vouch for: one of those ahead may have crashed right after sending its
          // gradient for the next step (it cannot vouch any more). The round still ended short of
          // the step's gradients: a miss for those that never sent it, so the coordinator evicts a
          // crashed one and the job goes on (without this, it retried the catch-up for ever)
          if (!await repair.catchUp(outcome.step, outcome.ahead)) recordShortRound(outcome.step, outcome.live, outcome.missing)
          continue
        }
        if (outcome.kind === 'not-a-member') {
          // a leave step ahead of ours also means evicted: the trainer gave up on a step the
          // others completed without this peer
          if (evictedAt(Number.MAX_SAFE_INTEGER)) return leaveEvicted()
          // not a member yet: wait for admission news
          await sleep(200, abort.signal)
          continue
        }
        const r = outcome.report
        report = r
        if (!confirmed && confirmsState(r, config.aggregation.f)) {
          confirmed = true
          log.info({ step: r.step }, 'f+1 members hold the state this peer took unchecked: it vouches for it from now on')
        }
        // members vouch for a past step's state by its full digest only (a sample cannot vouch
        // for the parameters outside it): anchor steps run with others
        if (r.members.length > 1 && r.fullDigest) stateAtStep.remember(r.step, r.digest)
        contributors.record(r.contributors.length)
        pace.step(r.epoch, r.samples)
        options.events?.onStep?.(r)
        members.recordMisses(r)
        // a re-synced state carries its own epoch bookkeeping (closing the epoch again would
        // count it twice): plan the next step from it
        if (await repair.repairDivergence(r)) continue
        if (config.checkpointEverySteps > 0 && progress.step % config.checkpointEverySteps === 0) {
          await options.events?.onCheckpoint?.(currentSnapshot())
        }
        if (r.epochEnded && await endEpoch()) return await finishTraining()
      }
      return undefined
    } catch (error) {
      if (abort.signal.aborted) return undefined
      runnerState = 'failed'
      if (options.logFailure !== false) log.error({ err: error }, 'training failed')
      options.events?.onFailed?.(error)
      throw error
    }
  }

  /** `from` is behind at `step` (a step this peer completed): send it this peer's gradient of that step again */
  const replay = (step: number, from: string): void => {
    if (step < progress.step) trainer.replay?.(step, from)
  }

  // a member admitted while the job is paused may be inside that step already (it ran it
  // before the pause decision reached it): it waits there for the others, paused as they are
  const currentState = (): RunnerState => runnerState === 'training' && control.pausedAt(progress.step) ? 'paused' : runnerState

  return {
    config,
    stages,
    state: currentState,
    progress: () => progress,
    membership: () => members.view(),
    membershipVersion: () => members.version(),
    liveMembers: () => runnerState === 'waiting' ? members.countedAtStart() : members.view().membersAt(progress.step).length,
    lastReport: () => report,
    lastValidation: () => ending.validation(),
    waitingFor: () => waiting.current(currentState(), progress.step),
    // while it steps: a pause or a wait is no step's time (a stall kept showing '~5s left')
    pace: () => currentState() === 'training' && waiting.current('training', progress.step) === undefined ? pace.pace() : undefined,
    result: () => ending.outcome(),
    contributorStats: () => contributors.summary(),
    start() {
      if (loop !== undefined) return
      if (runnerState === 'syncing') runnerState = 'training'
      announcer = setInterval(() => {
        if ((runnerState === 'training' || runnerState === 'paused') && members.isCoordinator()) members.announce()
      }, ANNOUNCE_EVERY_MS)
      control.start()
      loop = run()
      loop.catch(() => {}).finally(() => {
        clearInterval(announcer)
        control.stop()
      })
    },
    async stop(stopOptions: { finishStep?: boolean, timeoutMs?: number } = {}) {
      // a step below the rule's floor waits for a join (a cut-off side, for the link; a paused
      // job, for the resume): it cannot finish, and the stop would only wait out its bound
      // (SIGTERM took ~7 s); this peer leaves from that step instead
      if (stopOptions.finishStep === true && runnerState === 'training' && loop !== undefined && waiting.step()?.stalled !== true && !control.pausedAt(progress.step)) {
        // finish the step in progress so every member aggregates the same set for it
        stopAfterStep = true
        let timer: NodeJS.Timeout | undefined
        await Promise.race([
          loop.catch(() => undefined),
          // the others finish a step within a deadline or two while they run; bounded so that a
          // stop never waits long on members that stopped too (16 daemons given SIGINT together:
          // the last ones waited 11-12 s for a step nobody could finish with a bound of 30 s)
          new Promise((resolve) => { timer = setTimeout(resolve, stopOptions.timeoutMs ?? Math.min(STOP_FINISH_STEP_MAX_MS, Math.max(2_000, 2 * deadline.current()))) })
        ])
        clearTimeout(timer)
      }
      clearInterval(announcer)
      members.close()
      control.stop()
      stateAtStep.forget()
      abort.abort(new Error('job stopped'))
      inbound.close()
      await loop?.catch(() => undefined)
      if (runnerState !== 'finished' && runnerState !== 'failed') runnerState = 'finished'
      abort = new AbortController()
    },
    pause: async () => await control.request('pause'),
    resume: async () => await control.request('resume'),
    control: () => control,
    done: async () => loop,
    offerGradient(gradient) {
      // kept even from a peer not (yet) known as a member: a membership update may still be on
      // its way, and only the members expected at a step are ever aggregated
      const kept = inbound.offer(gradient)
      // from a member behind this peer: it may wait for this peer's gradient of that step
      if (!kept) replay(gradient.step, gradient.sender)
      return kept
    },
    replay,
    // 'now' when no step can run without a join: the step waits below the rule's floor, or an
    // eviction just took it there (the step notices at its next deadline round; a joiner
    // admitted MEMBERSHIP_MARGIN steps on would wait for donors that never get there); and
    // while the job is paused before this step: every member holds its state, and the members'
    // states MEMBERSHIP_MARGIN steps on only come after a resume, so the joiner waited for them
    // (`admitted to job: fetching its state`) until then
    admit: async (peerId) => await members.admit(peerId, runnerState === 'waiting'
      ? 'before-start'
      : runnerState === 'paused' || waiting.step()?.belowFloor === true || members.view().membersAt(progress.step).length < aggregation.minInputs ? 'now' : 'later'),
    withdrawAdmission: (peerId, why) => runnerState === 'waiting' && members.withdraw(peerId, why),
    memberLeaving: (peerId, effectiveStep) => members.memberLeaving(peerId, effectiveStep),
    mayDecideForJob: (peerId) => members.mayAnnounce(peerId),
    adoptMembership: (state) => members.adopt(state),
    snapshotAt: async (minStep, signal, requester, range) => await stateAtStep.snapshotAt(minStep, signal, requester, range),
    digestAt: async (minStep, signal) => await stateAtStep.digestAt(minStep, signal),
    stateConfirmed: () => confirmed,
    currentSnapshot,
    isCoordinator: () => members.isCoordinator(),
    stepDeadlineMs: () => deadline.current()
  }
}
