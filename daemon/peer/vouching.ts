/**
 * Whom a peer vouches for its state to: serves it or answers a digest question about it. A state
 * taken unchecked at join (JobRunnerOptions.provisional: from one member, without f+1 vouching) is
 * not vouched for to a peer that was not a member at the step before this one (a joiner) until
 * f+1 members have confirmed it (JobRunner.stateConfirmed, state-repair.ts confirmsState): else
 * one Byzantine member could hand a joiner its state and have that joiner vouch for it to the
 * next, and so impose it alone. Members (a catch-up) are answered: with n = 2f + 1 the job could
 * not go on without this peer's word.
 */
import type { JobRunner } from '../job/job-runner.js'

export function vouchesTo(runner: Pick<JobRunner, 'stateConfirmed' | 'membership' | 'progress'>, requester: string | undefined): boolean {
  if (runner.stateConfirmed() || requester === undefined) return true
  return runner.membership().isMemberAt(requester, Math.max(0, runner.progress().step - 1))
}
