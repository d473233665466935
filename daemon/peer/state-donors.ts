/**
 * Which members a joiner fetches the job's state from (JoinReply's donor and donors): the
 * coordinator names them when it admits the joiner, taking the state-holding members in turn so
 * that joiners admitted one after another spread their fetches over the members.
 */
import { MAX_STATE_RANGES } from '../../protocols/state-sync/index.js'
import type { JobRunner } from '../job/job-runner.js'

/** what of the coordinator's runner the choice reads */
export type DonorSource = Pick<JobRunner, 'membership' | 'progress' | 'lastReport' | 'state'>

export interface StateDonors {
  /**
   * The members a joiner starting at `effectiveStep` fetches from, `donor` the first of `donors`
   * (at most MAX_STATE_RANGES; the joiner takes one range of the state from each): those training
   * before this step (a member still fetching its own state would make the joiner wait on it)
   * that stay members at the joiner's first step and sent a gradient for the last step aggregated
   * (an evicted, re-joining or stalled member may hold no state to give), never the joiner itself
   * (a member restarted from its checkpoint joins again). This peer (`selfId`, the coordinator)
   * alone before the job's first step, after a resume from a checkpoint (no step done since: no
   * one else holds a state to give yet) or where no other member qualifies. Each call starts the
   * list one member further on.
   */
  next(runner: DonorSource, effectiveStep: number, joiner: string): { donor: string, donors: string[] }
}

export function createStateDonors(selfId: string): StateDonors {
  /** joiners admitted so far: they take the state-holding members as donors in turn */
  let turn = 0
  return {
    next(runner, effectiveStep, joiner) {
      const view = runner.membership()
      const step = runner.progress().step
      // a reviewer saw members admitted together at a resumed step name each other and fall back
      // after a refusal: none of them held a state yet
      const last = runner.lastReport()
      const state = runner.state()
      if ((state !== 'training' && state !== 'paused') || step === 0 || last === undefined) return { donor: selfId, donors: [selfId] }
      const active = last.step < step - 1 ? undefined : new Set([...last.contributors, selfId])
      const holders = view.membersAt(step).filter((id) => (view.record(id)?.joinStep ?? step) < step && view.isMemberAt(id, effectiveStep) && active?.has(id) !== false && id !== joiner)
      if (holders.length === 0) return { donor: selfId, donors: [selfId] }
      const first = turn++ % holders.length
      const donors = [...holders.slice(first), ...holders.slice(0, first)].slice(0, MAX_STATE_RANGES)
      return { donor: donors[0], donors }
    }
  }
}
