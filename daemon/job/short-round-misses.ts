/**
 * Whom a step's deadline round that ended short counts as missing. A miss for each member that
 * did not send, except one heard from (heartbeats) whose newest gradient is for the step before:
 * it is alive and one step behind (`lagging`). While such a member lags, also a miss for one whose
 * gradient for this step came but that has gone silent since: it crashed after sending it (to
 * this peer, not to the one lagging, which can neither finish the step before nor catch up to a
 * state only f+1 could vouch for), and only its eviction and re-admission gets the job going
 * again (test/fault/crash-mid-send.test.ts).
 */

export interface MissedRound {
  readonly step: number
  /** the members expected at the step */
  readonly live: readonly string[]
  /** those that did not send */
  readonly missing: readonly string[]
  readonly selfId: string
  /** the newest step a member's gradient was received for (undefined: none yet) */
  newestStepFrom(peerId: string): number | undefined
  /** whether the member was heard from lately; absent: no heartbeats to go by (nobody counts as lagging) */
  recentlyHeard?(peerId: string): boolean
}

/** `missing`: the misses to count; `lagging`: those of them alive one step behind (JobMembership.recordShortRound) */
export function shortRoundMisses(round: MissedRound): { missing: string[], lagging: string[] } {
  const { step, live, missing, selfId } = round
  const heard = round.recentlyHeard
  const lagging = missing.filter((id) => round.newestStepFrom(id) === step - 1 && heard?.(id) === true)
  const silent = lagging.length === 0 || heard === undefined
    ? []
    : live.filter((id) => id !== selfId && !missing.includes(id) && round.newestStepFrom(id) === step && !heard(id))
  return { missing: [...missing, ...silent], lagging }
}
