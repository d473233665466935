/**
 * The asynchronous step loop of one peer (mode: async). A step never waits for the others: the
 * peer computes its gradient on its shard, publishes it, and aggregates it (with the job's
 * robust rule) with the newest gradient each other member has published, as long as it is at
 * most `maxStaleness` steps old and was not used before: the paper's per-peer latest-gradient
 * queue (Barrak et al., "Exploring the impact of serverless computing on peer to peer training
 * machine learning", 2023, asynchronous variant). Parameters then drift apart; every
 * `averageEvery` steps and at every epoch's end the members run a robust parameter-averaging
 * round (a barrier with the step deadline): each sends its parameters' change since the last
 * agreed parameters (the anchor), compressed like a gradient, and all set
 * anchor + robust-aggregate(changes). Members that aggregated the same set hold identical
 * parameters afterwards; the anchor digest travels with each change, so a member whose anchor
 * differs (a joiner, a missed round) is re-synced by the runner's divergence repair. A round on
 * the side of a network cut that cannot step (step-quorum.ts) waits until the link returns or
 * the other side evicted it, so a cut job never trains on as two.
 *
 * On the wire, the gradient of step t is tagged 2t and the averaging round after step t 2t + 1.
 */
import { createRng, deriveSeed } from '../../ml/core/rng.js'
import { epochPermutation, gatherBatch, shardBatchIndices } from '../../ml/data/dataset.js'
import type { CollectResult } from '../membership/gradient-collector.js'
import type { InboundGradient, StepOutcome, StepReport, SyncTrainer, SyncTrainerDeps } from './sync-trainer.js'
import { describeShortRound, isPrimaryPartition } from './step-quorum.js'
import { parameterDigest, stepDigest } from './training-state.js'
import { setTimeout as sleepFor } from 'node:timers/promises'

/**
 * steps without an update are logged at the SKIPPED_UPDATE_LOG_AFTER-th and every
 * SKIPPED_UPDATE_LOG_EVERY-th after: a few at a job's start (no other gradient has arrived yet)
 * are normal, a job that keeps skipping (maxStaleness 0) trained at chance
 */
const SKIPPED_UPDATE_LOG_AFTER = 20
const SKIPPED_UPDATE_LOG_EVERY = 100

/** wire tag of step t's gradient */
export const gradientTag = (step: number): number => 2 * step
/** wire tag of the averaging round after step t */
export const averagingTag = (step: number): number => 2 * step + 1

/** averageEvery past which membership changes and pauses are not held for the next round (asyncChangeStep) */
const MAX_ROUND_ALIGNED_EVERY = 32

/**
 * The step a membership change or pause the coordinator decides now takes effect at in async mode,
 * given the earliest the news allows (`earliest`, its step + MEMBERSHIP_MARGIN): the step after the
 * next regular averaging round (a multiple of `averageEvery`). Async members run ahead of the
 * coordinator up to the next round, a barrier that waits for the coordinator's change, which it
 * sends after announcing the change: so no member has passed that step when it learns of it, each
 * plans its epoch (cursor, epoch end, rounds) with the same members, and a joiner takes the state
 * the members agreed at that round. Decided at the coordinator's step, a change took effect at
 * steps members had already run: their epoch ends, and rounds, moved apart from the others' for the
 * rest of the job. `averageEvery` above MAX_ROUND_ALIGNED_EVERY: `earliest` (the wait would be long).
 */
export function asyncChangeStep(earliest: number, averageEvery: number): number {
  if (averageEvery > MAX_ROUND_ALIGNED_EVERY) return earliest
  return Math.ceil(earliest / averageEvery) * averageEvery
}

/** how far ahead of this peer another member's gradients are looked for (steps) */
const LOOK_AHEAD_STEPS = 32

export function createAsyncTrainer(deps: SyncTrainerDeps): SyncTrainer {
  const { config, progress, membership, collector, stages } = deps
  const batchSize = config.batchSize
  let anchor = deps.params.slice()
  /** the newest step of each sender already aggregated: never used twice */
  const usedUpTo = new Map<string, number>()
  /** steps that updated nothing (too few fresh gradients) */
  let skippedUpdates = 0
  let permutation: { epoch: number, perm: Uint32Array } | undefined
  let sendFailure: { error: unknown } | undefined
  /** the member count each step of the current epoch ran with (the batches the cursor counted for it) */
  let worldsRun: { epoch: number, worlds: Map<number, number> } = { epoch: progress.epoch, worlds: new Map() }
  /** the membership version replan last checked the steps against */
  let replannedAt: number | undefined

  /**
   * A membership change the coordinator decided at its step can take effect at a step this peer
   * already ran: async members run ahead of each other, up to the next averaging round. Its cursor
   * then counted that step's batches with the old member count, its epoch ended steps away from the
   * others', and so did its rounds: each side's rounds heard only itself, averaging stopped for the
   * rest of the job (seen over the broker after a member crashed and was evicted). So the cursor is
   * corrected to the batches the members' steps took, as the others count them; not past the
   * epoch's last full batch (a change learned after the others' epoch end cannot be made good).
   */
  const replan = (): void => {
    if (worldsRun.epoch !== progress.epoch) {
      worldsRun = { epoch: progress.epoch, worlds: new Map() }
      return
    }
    // a step's own cost stays flat: the steps are checked again only after a membership change
    const version = deps.membershipVersion?.()
    if (version !== undefined && version === replannedAt) return
    replannedAt = version
    let delta = 0
    for (const [step, used] of worldsRun.worlds) delta += (membership.membersAt(step).length - used) * batchSize
    if (delta === 0) return
    const world = Math.max(1, membership.membersAt(progress.step).length)
    if (progress.cursor + delta < 0 || progress.cursor + delta + world * batchSize > deps.train.size) {
      deps.log.warn({ step: progress.step, cursor: progress.cursor, delta }, 'a membership change took effect at steps this peer already ran, too late in the epoch to plan them again: this peer\'s epoch may end at another step than the others\'')
    } else {
      deps.log.info({ step: progress.step, cursor: progress.cursor, delta }, 'a membership change took effect at steps this peer already ran: the epoch\'s cursor counts their batches as the others do')
      progress.cursor += delta
    }
    for (const step of worldsRun.worlds.keys()) worldsRun.worlds.set(step, membership.membersAt(step).length)
  }

  const permutationFor = (epoch: number): Uint32Array => {
    if (permutation?.epoch !== epoch) permutation = { epoch, perm: epochPermutation(deps.train.size, config.seed, epoch) }
    return permutation.perm
  }
  const send = (step: number, tag: number, digest: string, payload: Uint8Array, recipients: readonly string[]): void => {
    stages.time('send', () => deps.send({ step: tag, epoch: progress.epoch, digest, payload }, recipients)).catch((error: unknown) => { sendFailure ??= { error } })
  }

  /** the newest unused gradient of each other member, at most maxStaleness steps old */
  const freshGradients = async (step: number, others: readonly string[]): Promise<Map<string, InboundGradient>> => {
    const fresh = new Map<string, InboundGradient>()
    const wanted = new Set(others)
    for (let s = step + LOOK_AHEAD_STEPS; s >= Math.max(0, step - config.maxStaleness) && wanted.size > 0; s--) {
      const { received } = await collector.collect(gradientTag(s), { expected: wanted, deadline: 0 })
      for (const [sender, message] of received) {
        wanted.delete(sender)
        if (s > (usedUpTo.get(sender) ?? -1)) fresh.set(sender, message)
      }
    }
    for (const [sender, message] of fresh) usedUpTo.set(sender, message.step / 2)
    return fresh
  }

  /**
   * The round's changes from the other members: every deadline round until the members heard
   * from are the primary side of any cut (step-quorum.ts). A round that heard from half of the
   * members or fewer, without the most senior, is the side of a cut that waits, as a synchronous
   * step does (it trained on, a second job), until the others answer (a link that returns), one
   * of them is seen past the round, or it is no longer a member (they evicted it: the runner
   * re-joins with their state; 'not-a-member' then).
   */
  const collectChanges = async (step: number, others: readonly string[], resend: (to: readonly string[]) => void, signal?: AbortSignal): Promise<CollectResult<InboundGradient> | 'not-a-member'> => {
    for (let shortRounds = 1; ; shortRounds++) {
      const members = membership.membersAt(step)
      const collected = await stages.time('receive', async () => await collector.collect(averagingTag(step), {
        expected: new Set(others.filter((id) => membership.isMemberAt(id, step))),
        deadline: performance.now() + deps.deadline.current(),
        signal,
        // a member whose port refuses connections died: its deadline would only delay its eviction
        ...(deps.unreachable === undefined ? {} : { gaveUp: deps.unreachable })
      }))
      const present = new Set([...collected.received.keys(), deps.selfId])
      const senior = membership.coordinatorAt(step)
      if (collected.missing.length === 0 || signal?.aborted === true || isPrimaryPartition(members, present, senior)) {
        if (shortRounds > 1) deps.onWaiting?.(undefined)
        return collected
      }
      if (!membership.isMemberAt(deps.selfId, Number.MAX_SAFE_INTEGER)) return 'not-a-member'
      // members that sent a later step's gradient went past this round: not cut off, they ran no
      // such round (async rounds are not in lockstep: a membership change moves one member's epoch
      // end, and its round, away from the others') or ran it without this peer. Waiting on them
      // waited for ever (their job ended meanwhile). The round ends as before on this side, counting
      // nobody missing. Across a cut this lets through at most the lead they had when it came
      if (collector.sendersAhead(averagingTag(step)).some((id) => collected.missing.includes(id))) {
        if (shortRounds > 1) deps.onWaiting?.(undefined)
        return { ...collected, missing: [] }
      }
      const short = describeShortRound({ live: members, have: present.size, present, senior, minorityOfCut: true, missing: collected.missing, aggregation: deps.aggregation })
      deps.onWaiting?.(short.reason, short.stall)
      const level = shortRounds === 1 || shortRounds % 20 === 0 ? 'warn' : 'debug'
      deps.log[level]({ step, heard: present.size, members: members.length, missing: collected.missing, shortRounds }, `averaging round: ${short.logMessage}`)
      // those still at the round may be waiting for this peer's change, lost on the way
      resend(collected.missing)
      // a round that waited for nobody (every one missing is gone) would come straight back: pace it
      if (!collected.timedOut && collected.missing.every((id) => deps.unreachable?.(id) === true)) {
        await sleepFor(Math.min(500, deps.deadline.current()), undefined, { signal }).catch(() => {})
      }
    }
  }

  /** robust averaging of the members' parameter changes since the anchor; returns who was missing (none on the side of a cut: collectChanges) */
  const averageParameters = async (step: number, rank: number, others: readonly string[], signal?: AbortSignal): Promise<{ missing: string[], peerDigests: Map<string, string>, anchorDigest: string } | 'not-a-member'> => {
    const anchorDigest = parameterDigest(anchor)
    const delta = new Float32Array(deps.params.length)
    for (let i = 0; i < delta.length; i++) delta[i] = deps.params[i] - anchor[i]
    const rng = createRng(deriveSeed(config.seed, step, rank, 0xa7e))
    const payload = deps.codec.encode(delta, rng)
    const own = deps.codec.decode(payload, delta.length)
    const resend = (to: readonly string[]): void => { send(step, averagingTag(step), anchorDigest, payload, to) }
    resend(others)
    const collected = await collectChanges(step, others, resend, signal)
    if (collected === 'not-a-member') return collected
    const changes = new Map<string, Float32Array>([[deps.selfId, own]])
    const peerDigests = new Map<string, string>()
    for (const [sender, message] of collected.received) {
      changes.set(sender, message.gradient)
      peerDigests.set(sender, message.digest)
    }
    const ordered = [...changes.keys()].sort().map((id) => changes.get(id) as Float32Array)
    // short of the rule's minimum for its f (2f+1) the round changes nothing: a smaller set
    // would let one Byzantine member own too large a share of the average
    if (ordered.length >= deps.aggregation.minInputs) {
      const agreed = await stages.time('aggregate', () => deps.aggregation.aggregate(ordered))
      for (let i = 0; i < anchor.length; i++) deps.params[i] = anchor[i] + agreed[i]
      anchor = deps.params.slice()
    } else {
      deps.log.warn({ step, changes: ordered.length }, `parameter averaging skipped: ${deps.aggregation.describeShortfall(ordered.length, 'arrived', 'parameter changes')}`)
    }
    return { missing: collected.missing, peerDigests, anchorDigest }
  }

  return {
    agreedParams: () => anchor,

    stepsPerEpochAt(worldSize: number): number {
      return Math.floor(deps.train.size / (worldSize * batchSize))
    },

    async runStep(signal?: AbortSignal): Promise<StepOutcome> {
      const failure = sendFailure
      sendFailure = undefined
      if (failure !== undefined) throw failure.error
      const stepStart = performance.now()
      replan()
      const step = progress.step
      const members = membership.membersAt(step)
      const rank = members.indexOf(deps.selfId)
      if (rank < 0) return { kind: 'not-a-member' }
      const worldSize = members.length
      const others = members.filter((id) => id !== deps.selfId)

      const indices = shardBatchIndices(permutationFor(progress.epoch), progress.cursor, rank, worldSize, batchSize)
      const result = await stages.time('compute', () => deps.computer.computeGradient(deps.params, gatherBatch(deps.train, indices)))
      const sent = deps.attack === undefined ? result.gradient : deps.attack(result.gradient, step)
      const rng = createRng(deriveSeed(config.seed, step, rank, 0x5eed))
      const { payload, own } = await stages.time('compress', () => {
        const bytes = deps.codec.encode(sent, rng)
        return { payload: bytes, own: deps.codec.decode(bytes, sent.length) }
      })
      // nobody compares a gradient's digest in async (members' parameters differ between rounds): a sample
      send(step, gradientTag(step), stepDigest(deps.params, step), payload, others)

      const waitStart = performance.now()
      const fresh = await freshGradients(step, others)
      const contributions = new Map<string, Float32Array>([[deps.selfId, own]])
      for (const [sender, message] of fresh) contributions.set(sender, message.gradient)
      // short of the rule's minimum for its f, no update this step (async never waits, and
      // lowering f would let one Byzantine member own the update)
      const enough = contributions.size >= deps.aggregation.minInputs
      const contributors = enough ? [...contributions.keys()].sort() : []
      if (enough) {
        const aggregate = await stages.time('aggregate', () => deps.aggregation.aggregate(contributors.map((id) => contributions.get(id) as Float32Array)))
        await stages.time('update', () => deps.optimizer.step(deps.params, aggregate, progress.lr))
      } else if (++skippedUpdates >= SKIPPED_UPDATE_LOG_AFTER && (skippedUpdates - SKIPPED_UPDATE_LOG_AFTER) % SKIPPED_UPDATE_LOG_EVERY === 0) {
        deps.log.warn({ step, skippedUpdates, maxStaleness: config.maxStaleness }, `${skippedUpdates} steps so far updated nothing; at step ${step}: ${deps.aggregation.describeShortfall(contributions.size, 'fresh (at most maxStaleness steps old, not used before)', 'gradients')}`)
      }

      const worldAtEnd = membership.membersAt(step).length
      const cursor = progress.cursor + worldAtEnd * batchSize
      const nextWorld = Math.max(1, membership.membersAt(step + 1).length)
      const epochEnded = cursor + nextWorld * batchSize > deps.train.size
      let averaging: Exclude<Awaited<ReturnType<typeof averageParameters>>, 'not-a-member'> | undefined
      // every member runs the round at the same steps: the counts and the cursor are the same on all
      if (epochEnded || step % config.averageEvery === config.averageEvery - 1) {
        const round = await averageParameters(step, rank, others, signal)
        if (signal?.aborted === true) throw signal.reason ?? new Error('stopped')
        // evicted while this side of a cut waited: the runner re-joins with the others' state
        if (round === 'not-a-member') return { kind: 'not-a-member' }
        averaging = round
      }

      progress.cursor = cursor
      worldsRun.worlds.set(step, worldAtEnd)
      progress.step = step + 1
      progress.epochLossSum += result.loss
      progress.epochLossCount += 1
      // gradients older than the staleness bound are never used again
      collector.discardBefore(gradientTag(Math.max(0, step + 1 - config.maxStaleness)))
      const waitedMs = performance.now() - waitStart
      const stepMs = performance.now() - stepStart
      if (averaging !== undefined && averaging.missing.length === 0) deps.deadline.observe(waitedMs, stepMs)
      const report: StepReport = {
        step,
        epoch: progress.epoch,
        members,
        contributors,
        // an update needs 2f+1 fresh gradients and often has none: each member trained on its batch all the same
        samples: members.length * batchSize,
        // only an averaging round waits for the others; only there is anyone missing
        missing: averaging?.missing ?? [],
        ...(averaging === undefined ? { missesUncounted: true } as const : {}),
        // the full digest where members agree (after a round), a sample between
        digest: averaging?.anchorDigest ?? stepDigest(deps.params, step),
        fullDigest: averaging !== undefined,
        peerDigests: averaging?.peerDigests ?? new Map(),
        loss: result.loss,
        waitedMs,
        stepMs,
        epochEnded,
        stepInEpoch: Math.round(progress.cursor / (nextWorld * batchSize)),
        stepsInEpoch: Math.floor(deps.train.size / (nextWorld * batchSize))
      }
      return { kind: 'completed', report }
    }
  }
}
