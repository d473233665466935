import type { MembershipState } from '../../protocols/job/job-protocol.js'
import type { JobRunner } from '../job/job-runner.js'

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
 */
export async function admissionReply(runner: JobRunner, peerId: string, signal?: AbortSignal): Promise<{ effectiveStep: number, membership: MembershipState }> {
  const admitted = await runner.admit(peerId)
  const held = (): boolean => runner.state() === 'waiting' &&
    (runner.progress().step > 0 || runner.membership().membersAt(runner.progress().step).length >= runner.config.minPeers)
  if (!held()) return admitted
  while (held() && signal?.aborted !== true) await new Promise((resolve) => setTimeout(resolve, START_POLL_MS))
  return { effectiveStep: admitted.effectiveStep, membership: { version: runner.membershipVersion(), ...runner.membership().toSnapshot() } }
}
