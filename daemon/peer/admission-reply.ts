import { JOB_NOT_STARTED, NOT_THE_COORDINATOR, type ControlDecision, type MembershipState } from '../../protocols/job/job-protocol.js'
import { ExpectedRefusal, RequestError } from '../../protocols/request/json-request.js'
import type { JobRunner } from '../job/job-runner.js'

/** the reply to a join held until the start ran out before the start: the joiner asks again */
export class JobNotStartedError extends ExpectedRefusal {
  override name = 'JobNotStartedError'
  /** `reason`: what the start waits for (JobRunner.waitingFor) */
  constructor(reason: string) {
    super(`${JOB_NOT_STARTED} (${reason}): ask again`)
  }
}

/**
 * The refusal of a join sent to a member that does not coordinate: 'send the join request to
 * <coordinator>'. Where the requester is the one counted as coordinator (its new process: killed
 * and restarted with --bootstrap), told so, it says its previous process left and asks again
 * (job-joiner.ts): the normal course of such a restart, an ExpectedRefusal, not a warning.
 */
export function notTheCoordinator(coordinator: string | undefined, requester: string): Error {
  const refusal = `${NOT_THE_COORDINATOR} ${coordinator}`
  return coordinator === requester ? new ExpectedRefusal(refusal) : new Error(refusal)
}

/** how often a held reply looks whether the job started (ms) */
const START_POLL_MS = 100

/**
 * The coordinator's answer to a joiner it admitted: at once, except while the job waits to start
 * and the joiner, answered now, would start on a membership other than the one the job starts
 * with. Then it is answered once the job starts (or `signal` aborts), with the membership of the
 * start:
 * - a job resumed from a checkpoint (step > 0): members do not wait for minPeers there, so one
 *   answered before would run the resumed step alone;
 * - step 0 once minPeers members joined: a member answered then starts on that membership, while
 *   the host starts at its next check (every 250 ms) on one that holds whoever it admitted
 *   meanwhile; the two ran step 0 on different members and diverged at once (each side then lost
 *   a step deadline, 30 s by default, twice: 4 runs in 8 of a host and two joiners started
 *   together, test/e2e/start-together.test.ts).
 * Below minPeers at step 0 it is answered at once: it waits for the start announcement, which is
 * the first that lists minPeers members.
 *
 * `signal` ends a held reply: the joiner's request stream closed (it crashed or gave up) or the
 * transport's wait for the reply ran out. The admission is then withdrawn (JobRunner.withdrawAdmission)
 * and `forget` runs (the caller's record that the joiner was just heard from, which counts it as
 * back on a resumed host): counted, a joiner killed while held made the job start on a member that
 * no longer existed, and each step waited out its deadline for it until evicted (~2 min). Rejects
 * with JobNotStartedError, which tells a joiner still there to ask again.
 * `deadlineMs`: this coordinator's step deadline, the joiner's until it has timed steps of its own;
 * absent where the job's deadline is fixed (stepDeadlineMs: every member has it already).
 */
export async function admissionReply(runner: JobRunner, peerId: string, signal?: AbortSignal, forget?: () => void): Promise<{ effectiveStep: number, membership: MembershipState, deadlineMs?: number, control?: ControlDecision }> {
  const admitted = await runner.admit(peerId)
  const decision = runner.control().latest()
  const control = decision === undefined ? {} : { control: decision }
  const held = (): boolean => runner.state() === 'waiting' &&
    (runner.progress().step > 0 || runner.membership().membersAt(runner.progress().step).length >= runner.config.minPeers)
  const deadline = (): { deadlineMs?: number } => runner.config.stepDeadlineMs === undefined ? { deadlineMs: runner.stepDeadlineMs() } : {}
  if (!held()) return { ...admitted, ...deadline(), ...control }
  const heldSince = performance.now()
  while (held() && signal?.aborted !== true) await new Promise((resolve) => setTimeout(resolve, START_POLL_MS))
  if (held()) {
    // what the start waits for with this joiner counted: it asks again, and is counted again
    const reason = runner.waitingFor()?.reason ?? 'the job waits to start'
    const why = signal?.reason instanceof RequestError ? signal.reason.message : `held ${Math.round(performance.now() - heldSince)} ms without a start: told to ask again`
    runner.withdrawAdmission(peerId, why)
    forget?.()
    throw new JobNotStartedError(reason)
  }
  return { effectiveStep: admitted.effectiveStep, membership: { version: runner.membershipVersion(), ...runner.membership().toSnapshot() }, ...deadline(), ...control }
}
