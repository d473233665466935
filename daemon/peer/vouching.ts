/**
 * Whom a peer vouches for its state to: serves it or answers a digest question about it. A state
 * taken unchecked at join (JobRunnerOptions.provisional: from one member, without f+1 vouching) is
 * not vouched for to a peer that was not a member at the step before this one (a joiner) until
 * f+1 members have confirmed it (JobRunner.stateConfirmed, state-repair.ts confirmsState): else
 * one Byzantine member could hand a joiner its state and have that joiner vouch for it to the
 * next, and so impose it alone. Members (a catch-up) are answered: with n = 2f + 1 the job could
 * not go on without this peer's word. So is anyone while this peer is the coordinator (a
 * restarted host re-joins unchecked and keeps its seniority): a joiner already trusts the
 * coordinator's admission and takes its state when nothing else is vouched for, and a job below
 * the rule's floor, where no step runs to confirm anything, could otherwise admit no replacement.
 */
import type { JobRunner } from '../job/job-runner.js'

export function vouchesTo(runner: Pick<JobRunner, 'stateConfirmed' | 'membership' | 'progress' | 'isCoordinator'>, requester: string | undefined): boolean {
  if (runner.stateConfirmed() || requester === undefined || runner.isCoordinator()) return true
  return runner.membership().isMemberAt(requester, Math.max(0, runner.progress().step - 1))
}
