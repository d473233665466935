/**
 * Bringing this peer's training state back in line with the other members': divergence repair
 * (its digest differs from the majority's at a step), catch-up (the others finished a step
 * without it) and the end-of-job agreement (the last step's digests reach no later step).
 * Each fetches a member's snapshot through the JobNetwork and hands it to `adopt`.
 */
import type { Logger } from '../logger.js'
import { majorityDigest } from '../membership/digest-majority.js'
import type { StepReport } from '../training/sync-trainer.js'
import { parameterDigest } from '../training/training-state.js'
import { abortableSleep } from './abortable-sleep.js'
import type { JobMembership } from './job-membership.js'
import type { JobNetwork, JobSnapshot } from './job-types.js'

/** bounds on how long the end-of-job digest agreement waits for members still finishing */
const FINAL_AGREEMENT_MIN_MS = 5_000
const FINAL_AGREEMENT_MAX_MS = 120_000
const FINAL_AGREEMENT_TRIES = 4

export interface StateRepairOptions {
  readonly selfId: string
  readonly network: Pick<JobNetwork, 'fetchSnapshot' | 'queryDigest'>
  readonly membership: JobMembership
  readonly log: Logger
  /** the current step deadline in ms (the final agreement's budget scales with it) */
  deadlineMs(): number
  /** aborted when the job stops */
  signal(): AbortSignal
  /** the step the runner is at */
  step(): number
  params(): Float32Array
  /** replace this peer's training state with a fetched one */
  adopt(snapshot: JobSnapshot): void
}

export interface StateRepair {
  /** after a step: re-sync when this peer's digest differs from the majority's; returns whether it did */
  repairDivergence(report: StepReport): Promise<boolean>
  /** members finished `step` without this peer and went on: fetch the state they are at */
  catchUp(step: number, ahead: readonly string[]): Promise<void>
  /** before finishing: agree on the final parameters with the last step's members */
  agreeOnFinalState(): Promise<void>
}

export function createStateRepair(options: StateRepairOptions): StateRepair {
  const { selfId, network, membership, log } = options

  return {
    async repairDivergence(r) {
      if (r.peerDigests.size === 0) return false
      const majority = majorityDigest(new Map([...r.peerDigests, [selfId, r.digest]]), membership.view().seniority())
      if (majority.digest === r.digest) return false
      log.warn({ step: r.step, own: r.digest, majority: majority.digest, holders: majority.holders }, 'parameters diverged from the majority: re-syncing state')
      const source = majority.holders[0]
      try {
        options.adopt(await network.fetchSnapshot(source, options.step()))
      } catch (error) {
        // the divergence is still visible at the next step, which tries again
        log.warn({ step: r.step, source, err: (error as Error).message }, 'state re-sync failed: training on, retrying at the next step')
        return false
      }
      return true
    },

    async catchUp(step, ahead) {
      const seniority = membership.view().seniority()
      const sources = [...ahead].sort((a, b) => seniority.indexOf(a) - seniority.indexOf(b))
      log.warn({ step, ahead: sources }, 'members finished this step without this peer: re-syncing to catch up')
      for (const source of sources) {
        try {
          options.adopt(await network.fetchSnapshot(source, step + 1))
          return
        } catch (error) {
          log.warn({ step, source, err: (error as Error).message }, 'catch-up re-sync failed: trying the next member')
        }
      }
      // nobody could serve a state: the next attempt at the step runs it again
      await abortableSleep(500, options.signal())
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
      // whole ms: AbortSignal.timeout throws on a fraction (a derived deadline can be one)
      const budgetMs = Math.ceil(Math.min(FINAL_AGREEMENT_MAX_MS, Math.max(FINAL_AGREEMENT_MIN_MS, 3 * options.deadlineMs())))
      const signal = AbortSignal.any([stopped, AbortSignal.timeout(budgetMs)])
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
      }))
      if (stopped.aborted) return
      const unanswered = others.filter((id) => !digests.has(id))
      const majority = majorityDigest(digests, membership.view().seniority())
      if (majority.digest === own) {
        log.info({ step, digest: own, agreeing: majority.holders.length, of: others.length + 1, unanswered }, 'final parameters agree with the majority')
        return
      }
      log.warn({ step, own, majority: majority.digest, holders: majority.holders, unanswered }, 'final parameters differ from the majority: re-syncing state')
      for (const source of majority.holders) {
        try {
          const snap = await network.fetchSnapshot(source, step)
          if (snap.step !== step || parameterDigest(snap.params) !== majority.digest) {
            log.warn({ source, step: snap.step }, 'the majority member sent another state than it announced: trying the next holder')
            continue
          }
          options.adopt(snap)
          return
        } catch (error) {
          log.warn({ source, err: (error as Error).message }, 'final re-sync failed: trying the next holder')
        }
      }
      log.error({ step, own, majority: majority.digest }, 'could not re-sync to the majority\'s final parameters: finishing with this peer\'s own')
    }
  }
}
