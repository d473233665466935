/**
 * The synchronous data-parallel step loop of one peer. Each step: take this peer's shard of
 * the next global batch, compute its gradient, compress and send it to the other members,
 * collect theirs until all arrived or the deadline passed, aggregate (sorted by sender, so every
 * peer aggregates the same list in the same order) and apply the optimizer update. With
 * `exchange: reduce-scatter` each member gets only the parts of the slices it aggregates, and
 * the step's gradient is each slice's median over its replicas' results (reduce-scatter-step.ts,
 * collected by reduce-scatter-results.ts); the deadline, quorum and eviction rules are the same.
 */
import { createBufferRing } from '../../ml/compress/buffer-ring.js'
import { createRng, deriveSeed } from '../../ml/core/rng.js'
import { batchBuffers, epochPermutation, gatherBatch, shardBatchIndices, type BatchBuffers } from '../../ml/data/dataset.js'
import { offloadObserver } from '../metrics/stage-metrics.js'
import type { CollectResult } from '../membership/gradient-collector.js'
import { TrainingDivergedError } from './diverged.js'
import { exchangedDigest, stepDigest, type ExchangedDigest } from './training-state.js'
import { createRecentSends } from './recent-sends.js'
import { collectResults } from './reduce-scatter-results.js'
import { aggregateRun, encodeParts, encodeResults, fitsRun, medianOfReplicas, type OwnParts } from './reduce-scatter-step.js'
import type { SlicePlan } from './slice-plan.js'
import type { InboundGradient, OutboundGradient, ReduceScatterDeps, StepOutcome, StepReport, SyncTrainer, SyncTrainerDeps } from './step-types.js'
import { describeShortRound, stepQuorum } from './step-quorum.js'
import { setTimeout as sleepFor } from 'node:timers/promises'

/** a reduce-scatter step's slicing for the members it has (see runStep) */
interface Cut {
  readonly members: readonly string[]
  readonly plan: SlicePlan
  /** this peer's index in `members` */
  readonly rank: number
  /** this peer's parts (undefined: its gradient is not finite this step) */
  readonly parts: OwnParts | undefined
}

/** payload buffers the trainer cycles through (see the encode in runStep) */
const PAYLOAD_BUFFERS = 4
/** completed steps whose sends are kept to send again (below PAYLOAD_BUFFERS: each step's payload has its own buffer) */
const RECENT_SENDS = 2

export type {
  InboundGradient, OutboundGradient, ReduceScatterDeps, StepAggregation, StepCodec, StepOptimizer, StepOutcome, StepReport, SyncTrainer, SyncTrainerDeps
} from './step-types.js'

export class NotAMemberError extends Error {
  override name = 'NotAMemberError'
}

export function createSyncTrainer(deps: SyncTrainerDeps): SyncTrainer {
  const { config, progress, membership, collector, stages } = deps
  const batchSize = config.batchSize
  let permutation: { epoch: number, perm: Uint32Array } | undefined
  /** where each step's batch is gathered (gatherBatch): one set of arrays for the job */
  let gathered: BatchBuffers | undefined

  const permutationFor = (epoch: number): Uint32Array => {
    if (permutation?.epoch !== epoch) permutation = { epoch, perm: epochPermutation(deps.train.size, config.seed, epoch) }
    return permutation.perm
  }

  let ownBuffer: Float32Array | undefined
  /** what this peer sent for the steps it completed last, for members that lost it (see runStep) or are behind (replay) */
  const recentSends = createRecentSends(deps.selfId, RECENT_SENDS)
  const payloadBuffers = createBufferRing(PAYLOAD_BUFFERS)
  let sendFailure: { error: unknown } | undefined
  const throwSendFailure = (): void => {
    const failure = sendFailure
    sendFailure = undefined
    if (failure !== undefined) throw failure.error
  }

  /** Advances the progress past `step` and builds its report. */
  function finishStep(step: number, members: readonly string[], loss: number, { digest, full }: ExchangedDigest, stepStart: number,
    missing: readonly string[], waitedMs: number, contributors: readonly string[], peerDigests: ReadonlyMap<string, string>): StepReport {
    // the step consumed one batch per member that the step was planned for
    const worldAtEnd = membership.membersAt(step).length
    progress.cursor += worldAtEnd * batchSize
    progress.step = step + 1
    progress.epochLossSum += loss
    progress.epochLossCount += 1
    collector.discardBefore(step + 1)
    deps.reduceScatter?.results.discardBefore(step + 1)
    const nextWorld = Math.max(1, membership.membersAt(step + 1).length)
    const epochEnded = progress.cursor + nextWorld * batchSize > deps.train.size
    const stepMs = performance.now() - stepStart
    if (missing.length === 0) deps.deadline.observe(waitedMs, stepMs)
    const report: StepReport = {
      step,
      epoch: progress.epoch,
      members,
      contributors,
      samples: contributors.length * batchSize,
      missing,
      digest,
      fullDigest: full,
      peerDigests,
      loss,
      waitedMs,
      stepMs,
      epochEnded,
      stepInEpoch: Math.round(progress.cursor / (nextWorld * batchSize)),
      stepsInEpoch: Math.floor(deps.train.size / (nextWorld * batchSize))
    }
    return report
  }

  /**
   * A reduce-scatter step once its parts are collected: aggregate this peer's slices over the
   * parts (sorted by sender), send the results to every member, collect the other replicas'
   * results and take each slice's median (reduce-scatter-step.ts). A test-only attacker also
   * corrupts the results it sends as a replica.
   */
  const reduceScatterRest = async (step: number, { members, plan, rank, parts }: Cut,
    collected: CollectResult<InboundGradient>, digest: string, sendParts: (to: readonly string[]) => void, signal: AbortSignal | undefined):
  Promise<StepOutcome | 'recut' | { aggregate: Float32Array, contributors: string[], peerDigests: Map<string, string> }> => {
    const rs = deps.reduceScatter as ReduceScatterDeps
    const run = plan.replicaRun(rank)
    const partsBy = new Map<string, readonly Float32Array[]>(parts === undefined ? [] : [[deps.selfId, parts.parts]])
    const peerDigests = new Map<string, string>()
    for (const [sender, message] of collected.received) {
      // the collector let through only parts cut for this peer's slices of this cut
      if (message.sliced === undefined) continue
      partsBy.set(sender, message.sliced.parts)
      peerDigests.set(sender, message.digest)
    }
    const contributors = [...partsBy.keys()].sort()
    const attack = deps.equivocates === true ? undefined : deps.attack
    const corrupt = attack === undefined ? undefined : (r: Float32Array): Float32Array => attack(r, step)
    const mine = await stages.time('aggregate', () =>
      encodeResults(plan, run, aggregateRun(plan, run, contributors.map((id) => partsBy.get(id) as Float32Array[]), deps.aggregation, corrupt), config.seed, step))
    const results: OutboundGradient = { step, epoch: progress.epoch, digest, payload: mine.payload, slices: mine.slices }
    const others = members.filter((id) => id !== deps.selfId)
    stages.time('send', () => deps.send(results, others)).catch((error: unknown) => { sendFailure ??= { error } })
    const resend = (to: readonly string[]): void => {
      sendParts(to)
      if (to.length > 0) deps.send(results, to).catch(() => {})
    }
    recentSends.remember(step, members, resend)
    const byReplica = await stages.time('receive', async () => await collectResults({
      step, plan, members, selfId: deps.selfId, own: mine.decoded, f: deps.aggregation.f, results: rs.results, parts: collector,
      membership, deadlineMs: () => deps.deadline.current(), resend, log: deps.log, signal, absent: collected.missing,
      ...(deps.unreachable === undefined ? {} : { unreachable: deps.unreachable })
    }))
    if (signal?.aborted === true) throw signal.reason ?? new Error('stopped')
    if (byReplica === 'recut' || 'kind' in byReplica) return byReplica
    const aggregate = await stages.time('aggregate', () => medianOfReplicas(plan, byReplica, deps.optimizer.gradientBuffer()))
    return { aggregate, contributors, peerDigests }
  }

  return {
    replay(step, to) {
      // one that sent this peer its gradient for the step in progress is past `step`: its copy of
      // an old step is a re-send for a member it thinks lost it (resendPrevious), not a sign that
      // it is behind (a replay would be bytes for nothing)
      return recentSends.replay(step, to, () => collector.receivedAt(progress.step).has(to))
    },

    stepsPerEpochAt(worldSize: number): number {
      return Math.floor(deps.train.size / (worldSize * batchSize))
    },

    async runStep(signal?: AbortSignal): Promise<StepOutcome> {
      throwSendFailure()
      const stepStart = performance.now()
      const step = progress.step
      const members = membership.membersAt(step)
      const rank = members.indexOf(deps.selfId)
      if (rank < 0) return { kind: 'not-a-member' }
      const worldSize = members.length
      const { minInputs } = deps.aggregation
      if (worldSize < minInputs) {
        // no gradient computed or sent yet: a member admitted meanwhile joins this very step
        deps.onWaiting?.(deps.aggregation.describeShortfall(worldSize, worldSize === 1 ? 'live member' : 'live members'), 'below-floor')
        return { kind: 'too-few-members', step, live: worldSize }
      }
      // the digest members compare: a full sha256 at anchor steps, a sample between (see
      // exchangedDigest); alone, nobody compares it
      const { digest, full: fullDigest } = worldSize > 1 || deps.exchangeAlone === true
        ? exchangedDigest(deps.params, step, config.digestEvery)
        : { digest: stepDigest(deps.params, step), full: false }

      const indices = shardBatchIndices(permutationFor(progress.epoch), progress.cursor, rank, worldSize, batchSize)
      // dropout masks are seeded by (job seed, step, sample index): the same on every peer
      // gathered into the same arrays every step (the step is done with them before the next)
      if (indices.length === batchSize) gathered ??= batchBuffers(deps.train, batchSize)
      const batch = { ...gatherBatch(deps.train, indices, indices.length === batchSize ? gathered : undefined), dropout: { seed: config.seed, step, sampleIndices: indices } }
      const result = await stages.time('compute', () => deps.computer.computeGradient(deps.params, batch, offloadObserver(stages), deps.optimizer.localGradientBuffer()))
      const honest = result.gradient
      const sent = deps.attack === undefined || deps.equivocates === true ? honest : deps.attack(honest, step)

      // a non-finite gradient (an overflowing batch) is not sent: the others aggregate without
      // this peer at this step. Non-finite parameters are the job diverging: that stops it
      const finite = deps.optimizer.allFinite(sent)
      const others = members.filter((id) => id !== deps.selfId)
      const alone = others.length === 0 && deps.exchangeAlone !== true
      if (!finite) {
        if (!deps.optimizer.allFinite(deps.params)) throw new TrainingDivergedError(step, `the parameters are not finite at step ${step}: training diverged (lower the learning rate, or use a robust aggregation rule)`)
        if (!alone) deps.log.warn({ step }, 'this peer\'s gradient is not finite: not sending it this step (the others aggregate without it)')
      }
      if (alone) {
        // alone at this step (a rule that needs one input): no one to send to or wait for,
        // nothing to aggregate. A non-finite gradient is every member's, as when no member sends
        // a finite one below: skipped, a job at lr 1e30 ran to its end on NaN losses and exited 0
        if (!finite) throw new TrainingDivergedError(step, `the gradient of step ${step} is not finite (loss ${result.loss}) and it is the step's only gradient: training diverged (lower the learning rate)`)
        await stages.time('update', () => deps.optimizer.step(deps.params, sent, progress.lr))
        return { kind: 'completed', report: finishStep(step, members, result.loss, { digest, full: fullDigest }, stepStart, [], 0, [deps.selfId], new Map()) }
      }

      const rng = createRng(deriveSeed(config.seed, step, rank, 0x5eed))
      // reduce-scatter: each member gets the slices it aggregates (reduce-scatter-step.ts), cut
      // for the step's members; cut again if they change while the step waits (an eviction)
      const rs = deps.reduceScatter
      const cutFor = (cutMembers: readonly string[]): Cut => {
        const plan = (rs as ReduceScatterDeps).plan(cutMembers.length)
        const cutRank = cutMembers.indexOf(deps.selfId)
        return { members: cutMembers, plan, rank: cutRank, parts: finite ? encodeParts(plan, sent, config.seed, step, cutRank) : undefined }
      }
      let cut = rs === undefined ? undefined : await stages.time('compress', () => cutFor(members))
      const { payload, own } = !finite || rs !== undefined ? { payload: undefined, own: undefined } : await stages.time('compress', () => {
        // into the buffer of this step, reused 4 steps later (a retry of the step writes over
        // its own): the payload is read while the step is one of the last RECENT_SENDS (re-sends,
        // the previous-step re-send, replays to members behind); the transports copy it when a
        // send starts (JobWire.publishGradient)
        const bytes = deps.codec.encode(sent, rng, payloadBuffers.at(step, deps.codec.encodedSize(sent.length)))
        // aggregate exactly what the others will decode, so every member sees the same vectors
        // decoded into one buffer reused every step (nothing keeps `own` past the step's update)
        ownBuffer ??= new Float32Array(sent.length)
        return { payload: bytes, own: deps.codec.decode(bytes, sent.length, ownBuffer.length === sent.length ? ownBuffer : undefined) }
      })
      const contributes = finite
      // not awaited before collecting: a write to a member whose link died blocks until the send
      // timeout, and holding the step on it made healthy peers miss steps and get evicted too.
      // Writes to one peer stay in order; a failed send (bad config, stopped exchange) still fails
      // this step or the next.
      const sentTo = new Set<string>()
      const failed = (error: unknown): void => { sendFailure ??= { error } }
      const sendParts = (recipients: readonly string[]): void => {
        const c = cut
        if (c?.parts === undefined) return
        for (const id of recipients) {
          // a member admitted during the step has no slices in this cut (the next cut has)
          const index = c.members.indexOf(id)
          if (index < 0) continue
          const { payload: bytes, slices } = (deps.equivocates === true && deps.attack !== undefined
            ? encodeParts(c.plan, deps.attack(honest, step, id), config.seed, step, c.rank)
            : c.parts).partsFor(index)
          stages.time('send', () => deps.send({ step, epoch: progress.epoch, digest, payload: bytes, slices }, [id])).catch(failed)
        }
      }
      const sendTo = (recipients: readonly string[]): void => {
        for (const id of recipients) sentTo.add(id)
        if (cut !== undefined) return sendParts(recipients)
        if (payload === undefined) return
        if (deps.equivocates === true && deps.attack !== undefined) {
          for (const id of recipients) {
            const forged = deps.codec.encode(deps.attack(honest, step, id), rng)
            stages.time('send', () => deps.send({ step, epoch: progress.epoch, digest, payload: forged }, [id])).catch(failed)
          }
          return
        }
        stages.time('send', () => deps.send({ step, epoch: progress.epoch, digest, payload }, recipients)).catch(failed)
      }
      sendTo(others)

      const waitStart = performance.now()
      /** deadline rounds of this step that ended short (the first and every 20th are logged at warn, the rest at debug) */
      let shortRounds = 0
      const collectParts = async (): Promise<CollectResult<InboundGradient> | StepOutcome> => await stages.time('receive', async (): Promise<CollectResult<InboundGradient> | StepOutcome> => {
        for (;;) {
          // membership may change while the step waits (an eviction, or a peer admitted at this
          // step because it could not go on): this step's own gradient is kept as computed, so
          // every member aggregates the same vectors, and a newcomer gets it at once
          const live = membership.membersAt(step)
          if (cut !== undefined && live.includes(deps.selfId) && live.join() !== cut.members.join()) {
            // reduce-scatter: the slices follow the members; the others cut again too (the
            // collectors keep a sender's latest cut)
            cut = cutFor(live)
            sentTo.clear()
          }
          // one evicted meanwhile may be admitted again at this step, a new process that never
          // got this peer's gradient: it is sent again then
          for (const id of sentTo) if (!live.includes(id)) sentTo.delete(id)
          const newcomers = live.filter((id) => id !== deps.selfId && !sentTo.has(id))
          if (newcomers.length > 0) sendTo(newcomers)
          const c = cut
          const outcome = await collector.collect(step, {
            expected: new Set(live.filter((id) => id !== deps.selfId)),
            deadline: performance.now() + deps.deadline.current(),
            signal,
            // a member whose port refuses connections died: its deadline would only delay its eviction
            ...(deps.unreachable === undefined ? {} : { gaveUp: deps.unreachable }),
            // reduce-scatter: only parts cut for this peer's slices under the same membership count
            ...(c === undefined ? {} : { accept: (m: InboundGradient) => m.sliced !== undefined && fitsRun(c.plan, m.sliced.header, c.plan.replicaRun(c.rank)) })
          })
          if (signal?.aborted === true) return outcome
          const have = outcome.received.size + (contributes && live.includes(deps.selfId) ? 1 : 0)
          const present = new Set([...outcome.received.keys(), deps.selfId])
          const senior = membership.coordinatorAt(step)
          const { needed, met, minorityOfCut } = stepQuorum({ live, have, present, senior, quorum: config.quorum, minInputs })
          if (met) {
            deps.onWaiting?.(undefined)
            return outcome
          }
          // the others may have evicted this peer meanwhile (a cut link): stop waiting for them.
          // Any leave step counts, also one after this step: they finished this step without
          // us, and its gradients were lost on the dead link, so no quorum is ever coming
          if (!membership.isMemberAt(deps.selfId, Number.MAX_SAFE_INTEGER)) return { kind: 'not-a-member' }
          // members that already sent a later step completed this one without our gradient and
          // will not send theirs for it again: only a re-sync catches up with them. f+1 of them,
          // since f could be lying about a step far ahead (and only f+1 can vouch for a state)
          const ahead = collector.sendersAhead(step).filter((id) => membership.isMemberAt(id, step))
          if (ahead.length > deps.aggregation.f) return { kind: 'behind', step, ahead, live, missing: outcome.missing }
          // nothing of its own to send and nothing from anyone: every member's gradient went
          // non-finite at once (the parameters are blowing up), the job diverged
          if (!contributes && outcome.received.size === 0) {
            throw new TrainingDivergedError(step, `no member sent a finite gradient for step ${step}: training diverged (lower the learning rate, or use a robust aggregation rule)`)
          }
          const short = describeShortRound({ live, have, present, senior, minorityOfCut, missing: outcome.missing, aggregation: deps.aggregation })
          deps.onWaiting?.(short.reason, short.stall)
          // a job waiting for a member to join (or come back) goes round every deadline, or every
          // 500 ms below the floor: one line now and then, not two a second (status says why)
          shortRounds++
          const level = shortRounds === 1 || shortRounds % 20 === 0 ? 'warn' : 'debug'
          deps.log[level]({ step, received: have, needed, missing: outcome.missing, shortRounds }, short.logMessage)
          deps.onShortRound?.(step, live, outcome.missing)
          if (outcome.missing.length > 0) {
            // those still at this step may be waiting for ours, lost on the way as theirs were
            sendTo(outcome.missing)
            // and one still at the step before may have lost ours for that one after this peer
            // moved on (nothing else sends it again): it cannot finish that step and send this
            // one, and with the members ahead holding different aggregates no f+1 of them vouch
            // for a state it could catch up to, so both sides would wait for ever
            recentSends.resendPrevious(step, outcome.missing)
            // a round that waited for nobody (every one missing is gone) would come straight back: pace it
            if (!outcome.timedOut && outcome.missing.every((id) => deps.unreachable?.(id) === true)) await sleep(Math.min(500, deps.deadline.current()), signal)
          }
          // everyone there has sent: only a join can help, wait for it without spinning
          else await sleep(Math.min(500, deps.deadline.current()), signal)
        }
      })
      const collectedOrEnd = async (): Promise<CollectResult<InboundGradient> | StepOutcome> => {
        const outcome = await collectParts()
        if (signal?.aborted === true) throw signal.reason ?? new Error('stopped')
        throwSendFailure()
        return outcome
      }
      let collected = await collectedOrEnd()
      if ('kind' in collected) return collected
      const waitedMs = performance.now() - waitStart

      if (cut !== undefined) {
        for (;;) {
          const outcome = await reduceScatterRest(step, cut, collected, digest, sendParts, signal)
          if (outcome === 'recut') {
            // the members changed while the results came: cut again and collect the parts anew
            collected = await collectedOrEnd()
            if ('kind' in collected) return collected
            continue
          }
          if ('kind' in outcome) return outcome
          await stages.time('update', () => deps.optimizer.step(deps.params, outcome.aggregate, progress.lr))
          return { kind: 'completed', report: finishStep(step, cut.members, result.loss, { digest, full: fullDigest }, stepStart, collected.missing, waitedMs, outcome.contributors, outcome.peerDigests) }
        }
      }
      const contributions = new Map<string, Float32Array>(own === undefined ? [] : [[deps.selfId, own]])
      const peerDigests = new Map<string, string>()
      for (const [sender, message] of collected.received) {
        contributions.set(sender, message.gradient)
        peerDigests.set(sender, message.digest)
      }
      const contributors = [...contributions.keys()].sort()
      const ordered = contributors.map((id) => contributions.get(id) as Float32Array)
      if (payload !== undefined) {
        const message: OutboundGradient = { step, epoch: progress.epoch, digest, payload }
        recentSends.remember(step, members, (to) => { deps.send(message, to).catch(() => {}) })
      }
      const aggregate = await stages.time('aggregate', () => deps.aggregation.aggregate(ordered, deps.optimizer.gradientBuffer()))
      await stages.time('update', () => deps.optimizer.step(deps.params, aggregate, progress.lr))
      return { kind: 'completed', report: finishStep(step, members, result.loss, { digest, full: fullDigest }, stepStart, collected.missing, waitedMs, contributors, peerDigests) }
    }
  }
}

/** waits `ms`, or less when `signal` aborts (never throws) */
async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await sleepFor(ms, undefined, { signal }).catch(() => {})
}
