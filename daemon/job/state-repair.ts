/**
 * Bringing this peer's training state back in line with the other members': divergence repair
 * (its digest differs from the majority's at a step), catch-up (the others finished a step
 * without it) and the end-of-job agreement (the last step's digests reach no later step).
 * Each fetches a member's snapshot through the JobNetwork and hands it to `adopt`, but only a
 * state that f+1 members vouch for: at least f+1 members hold its parameter digest at its step
 * (told by the digests that travel with their gradients, or asked), so no single peer (one
 * announcing a far-ahead step, or inventing a digest) can make honest peers take its state.
 */
import type { Logger } from '../logger.js'
import { majorityDigest } from '../membership/digest-majority.js'
import type { StepReport } from '../training/sync-trainer.js'
import { parameterDigest } from '../training/training-state.js'
import { abortableSleep } from './abortable-sleep.js'
import { budgetSignal } from './budget-signal.js'
import type { JobMembership } from './job-membership.js'
import type { JobNetwork, JobSnapshot } from './job-types.js'

/** bounds on how long the end-of-job digest agreement waits for members still finishing */
const FINAL_AGREEMENT_MIN_MS = 5_000
const FINAL_AGREEMENT_MAX_MS = 120_000
const FINAL_AGREEMENT_TRIES = 4
/** bounds on how long vouching for a fetched state waits for members still getting to its step */
const VOUCH_MIN_MS = 2_000
const VOUCH_MAX_MS = 30_000

export interface StateRepairOptions {
  readonly selfId: string
  readonly network: Pick<JobNetwork, 'fetchSnapshot' | 'queryDigest'>
  readonly membership: JobMembership
  readonly log: Logger
  /** faulty members tolerated (aggregation.f): a state needs f+1 members vouching for it */
  readonly f: number
  /**
   * a member asked about a state's step that is past it vouches if it still holds the state's
   * digest (async: members serve the parameters agreed at the last averaging round, held from one
   * round to the next while each member steps on at its own pace, so an answer from the same step
   * was rare and re-syncs were refused). Default false: the same step only (sync: every step
   * changes the parameters)
   */
  readonly laterStepVouches?: boolean
  /** digests members sent with their gradients for `step` (kept by the collector), by sender */
  knownDigests(step: number): ReadonlyMap<string, string>
  /** the current step deadline in ms (the final agreement's budget scales with it) */
  deadlineMs(): number
  /** aborted when the job stops */
  signal(): AbortSignal
  /** the step the runner is at */
  step(): number
  params(): Float32Array
  /** replace this peer's training state with a fetched one */
  adopt(snapshot: JobSnapshot): void
  /**
   * no digest has f+1 holders: reconcile the members' states at this peer's current step
   * (state-reconciliation.ts); true when the state was replaced
   */
  reconcile(step: number): Promise<boolean>
}

export interface StateRepair {
  /** after a step: re-sync when this peer's digest differs from the majority's; returns whether it did */
  repairDivergence(report: StepReport): Promise<boolean>
  /** members finished `step` without this peer and went on: fetch the state they are at; false when no state f+1 vouch for came */
  catchUp(step: number, ahead: readonly string[]): Promise<boolean>
  /** before finishing: agree on the final parameters with the last step's members */
  agreeOnFinalState(): Promise<void>
}

/**
 * Whether a step report confirms this peer's state: at a step with full digests (the sampled ones
 * between cannot vouch for the parameters outside the sample), at least f+1 other members sent the
 * digest this peer holds. A peer that took its state from one member unchecked (a join's fallback)
 * vouches for it to joiners only after this (session-core.ts), so one Byzantine member cannot
 * hand its state to a joiner and then have that joiner vouch for it to the next.
 */
export function confirmsState(report: Pick<StepReport, 'fullDigest' | 'digest' | 'peerDigests'>, f: number): boolean {
  if (!report.fullDigest) return false
  let agreeing = 0
  for (const digest of report.peerDigests.values()) if (digest === report.digest) agreeing++
  return agreeing >= f + 1
}

export function createStateRepair(options: StateRepairOptions): StateRepair {
  const { selfId, network, membership, log } = options
  const needed = options.f + 1

  /**
   * Whether at least f+1 members hold `digest` at `step`: the source that served it, the digests
   * their gradients carried, then the other members of that step, asked (one that is not there
   * yet answers when it gets there, within a few deadlines; one far behind refuses at once).
   */
  const vouched = async (step: number, digest: string, source: string): Promise<string[]> => {
    const vouchers = new Set<string>([source])
    const members = membership.view().membersAt(step).filter((id) => id !== selfId)
    for (const [peer, held] of options.knownDigests(step)) if (held === digest && members.includes(peer)) vouchers.add(peer)
    if (vouchers.size >= needed) return [...vouchers]
    const ask = members.filter((id) => !vouchers.has(id))
    const enough = new AbortController()
    const budgetMs = Math.min(VOUCH_MAX_MS, Math.max(VOUCH_MIN_MS, 3 * options.deadlineMs()))
    const { signal, dispose } = budgetSignal(budgetMs, options.signal(), enough.signal)
    await Promise.all(ask.map(async (peer) => {
      try {
        const answer = await network.queryDigest(peer, step, signal)
        if ((answer.step === step || (options.laterStepVouches === true && answer.step > step)) && answer.digest === digest) vouchers.add(peer)
        if (vouchers.size >= needed) enough.abort()
      } catch {
        // unreachable, refused or too slow: no vouch
      }
    })).finally(dispose)
    return [...vouchers]
  }

  /**
   * Fetch from the first source whose state f+1 members vouch for (and that holds `expected`,
   * when given) and adopt it; false when none did.
   */
  const adoptVouched = async (sources: readonly string[], minStep: number, why: string, expected?: { step: number, digest: string }): Promise<boolean> => {
    for (const source of sources) {
      let snap: JobSnapshot
      try {
        snap = await network.fetchSnapshot(source, minStep)
      } catch (error) {
        log.warn({ source, minStep, err: (error as Error).message }, `${why}: fetching the state failed, trying the next member`)
        continue
      }
      const digest = parameterDigest(snap.params)
      if (expected !== undefined && (snap.step !== expected.step || digest !== expected.digest)) {
        log.warn({ source, step: snap.step, expected }, `${why}: the member sent another state than it announced, trying the next member`)
        continue
      }
      const vouchers = expected !== undefined ? [source] : await vouched(snap.step, digest, source)
      if (expected === undefined && vouchers.length < needed) {
        log.warn({ source, step: snap.step, digest, vouchers, needed }, `${why}: refusing a state fewer than f+1 members vouch for`)
        continue
      }
      options.adopt(snap)
      return true
    }
    return false
  }

  return {
    async repairDivergence(r) {
      if (r.peerDigests.size === 0) return false
      const digests = new Map([...r.peerDigests, [selfId, r.digest]])
      const majority = majorityDigest(digests, membership.view().seniority())
      if (majority.holders.length < needed && new Set(digests.values()).size > 1) {
        // no state that f+1 members vouch for (any one could be a single peer's invention), and
        // waiting keeps the members apart for good: every member ends up here and they reconcile
        log.warn({ step: r.step, own: r.digest, digests: digests.size, distinct: new Set(digests.values()).size, needed }, 'parameters differ across the members and no f+1 of them hold the same digest')
        return await options.reconcile(options.step())
      }
      if (majority.digest === r.digest) return false
      log.warn({ step: r.step, own: r.digest, majority: majority.digest, holders: majority.holders }, 'parameters diverged from the majority: re-syncing state')
      // the divergence is still visible at the next step, which tries again
      return await adoptVouched(majority.holders, options.step(), 'state re-sync')
    },

    async catchUp(step, ahead) {
      const seniority = membership.view().seniority()
      const rank = (id: string): number => seniority.includes(id) ? seniority.indexOf(id) : seniority.length
      const sources = [...ahead].sort((a, b) => rank(a) - rank(b))
      log.warn({ step, ahead: sources }, 'members finished this step without this peer: re-syncing to catch up')
      if (await adoptVouched(sources, step + 1, 'catch-up')) return true
      // nobody served a vouched state: the next attempt at the step runs it again
      await abortableSleep(500, options.signal())
      return false
    },

    /**
     * The last step's digests reach no later step, so a gradient lost there (or a re-sync that
     * jumped to a later step near the end) would leave members finishing with different
     * parameters. Ask every member of the last step for its digest at this step and re-sync to
     * the majority's state if this peer's differs.
     */
    async agreeOnFinalState() {
      const step = options.step()
      const own = parameterDigest(options.params())
      const others = membership.view().membersAt(step - 1).filter((id) => id !== selfId)
      if (others.length === 0) return
      const stopped = options.signal()
      const budgetMs = Math.min(FINAL_AGREEMENT_MAX_MS, Math.max(FINAL_AGREEMENT_MIN_MS, 3 * options.deadlineMs()))
      const { signal, dispose } = budgetSignal(budgetMs, stopped)
      const digests = new Map<string, string>([[selfId, own]])
      await Promise.all(others.map(async (peer) => {
        // a member still finishing answers when it gets there (the server waits); one that cannot
        // be asked (gone after finishing, or crashed) is tried a few times, not for the whole budget
        for (let attempt = 0; attempt < FINAL_AGREEMENT_TRIES && !signal.aborted; attempt++) {
          try {
            const answer = await network.queryDigest(peer, step, signal)
            // a member past this step went on (it decided differently at the epoch end): not a vote
            if (answer.step === step) digests.set(peer, answer.digest)
            return
          } catch {
            await abortableSleep(200 * 2 ** attempt, signal)
          }
        }
      })).finally(dispose)
      if (stopped.aborted) return
      const unanswered = others.filter((id) => !digests.has(id))
      const majority = majorityDigest(digests, membership.view().seniority())
      const distinct = new Set(digests.values()).size
      if (majority.holders.length < needed && distinct > 1) {
        // checked before agreeing: the member whose digest wins a tie must reconcile with the others
        log.warn({ step, own, distinct, needed, unanswered }, 'final parameters differ across the members and no f+1 of them hold the same digest: reconciling')
        if (!await options.reconcile(step)) log.error({ step, own }, 'could not reconcile the final parameters: finishing with this peer\'s own')
        return
      }
      if (majority.digest === own) {
        log.info({ step, digest: own, agreeing: majority.holders.length, of: others.length + 1, unanswered }, 'final parameters agree with the majority')
        return
      }
      log.warn({ step, own, majority: majority.digest, holders: majority.holders, unanswered }, 'final parameters differ from the majority: re-syncing state')
      // each holder answered with the digest: the f+1 vouches are in; the state must match it
      if (await adoptVouched(majority.holders, step, 'final re-sync', { step, digest: majority.digest })) return
      log.error({ step, own, majority: majority.digest }, 'could not re-sync to the majority\'s final parameters: finishing with this peer\'s own')
    }
  }
}
