/**
 * The second collection of a reduce-scatter step (reduce-scatter-step.ts): the replicas' results
 * for every slice, under the same rules as the parts. It waits until every live member has sent
 * its results (members whose parts did not come are not waited for at first: a crashed member
 * would cost every step two deadlines) or the step deadline passes; past it a slice needs results from f+1 of
 * its replicas (a majority of 2f+1), since one more than f is the fewest that still holds an
 * honest one whatever f of them do. A slice short of that keeps the step waiting (its results
 * sent again to the members that lack them), unless f+1 members have moved on (this peer is
 * behind and re-syncs) or this peer is no member any more. A crashed replica is evicted by its
 * missed parts, as a crashed member is in the stream exchange; one whose port refuses connections
 * (`unreachable`) is not waited for past what the slices need.
 */
import type { GradientCollector } from '../membership/gradient-collector.js'
import type { MembershipView } from '../membership/membership-view.js'
import { fitsRun, slicesShortOf } from './reduce-scatter-step.js'
import type { SlicePlan } from './slice-plan.js'
import type { InboundGradient, StepOutcome } from './step-types.js'

export interface ResultsWait {
  readonly step: number
  readonly plan: SlicePlan
  /** the step's members, sorted (the plan's order) */
  readonly members: readonly string[]
  readonly selfId: string
  /** this peer's own results, decoded (its run, in run order) */
  readonly own: readonly Float32Array[]
  readonly f: number
  readonly results: Pick<GradientCollector<InboundGradient>, 'collect' | 'receivedAt'>
  /** the parts collector: members that sent parts of a later step finished this one */
  readonly parts: Pick<GradientCollector<InboundGradient>, 'sendersAhead'>
  readonly membership: Pick<MembershipView, 'isMemberAt' | 'membersAt'>
  readonly deadlineMs: () => number
  /** this peer's parts and results of the step again, to members that lack them */
  resend(to: readonly string[]): void
  readonly log: { warn(obj: object, msg: string): void }
  readonly signal?: AbortSignal
  /**
   * members whose parts did not come by the step's deadline: most likely gone, so the first
   * round does not wait for their results beyond what the slices need (f+1 of each)
   */
  readonly absent?: readonly string[]
  /**
   * members known gone (their port refuses connections: refused-members.ts): a round stops
   * waiting for their results, as the parts collection does, instead of waiting out the deadline
   */
  readonly unreachable?: (peer: string) => boolean
}

/**
 * Each replica's results (member index -> its run's results, run order), or how the step ended
 * instead, or 'recut' when the step's members changed (an eviction announced meanwhile): the
 * slices are cut again and the step's parts collected anew. Returns what it has when `signal`
 * aborts (the caller checks it).
 */
export async function collectResults(w: ResultsWait): Promise<Map<number, readonly Float32Array[]> | StepOutcome | 'recut'> {
  const self = w.members.indexOf(w.selfId)
  let skip = new Set(w.absent ?? [])
  for (;;) {
    const now = w.membership.membersAt(w.step)
    if (now.includes(w.selfId) && now.join() !== w.members.join()) return 'recut'
    const live = w.members.filter((id) => id !== w.selfId && w.membership.isMemberAt(id, w.step))
    const expected = new Set(live.filter((id) => !skip.has(id)))
    skip = new Set()
    // results cut for another membership of the step (a sender that cut before or after this
    // peer) are not this cut's: not counted, and waited for
    const fits = (m: InboundGradient): boolean => {
      const index = w.members.indexOf(m.sender)
      return index >= 0 && m.sliced !== undefined && fitsRun(w.plan, m.sliced.header, w.plan.replicaRun(index))
    }
    const gaveUp = w.unreachable
    await w.results.collect(w.step, { expected, deadline: performance.now() + w.deadlineMs(), signal: w.signal, accept: fits, ...(gaveUp === undefined ? {} : { gaveUp }) })
    // what every live member sent, those not waited for included
    const received = new Map([...w.results.receivedAt(w.step)].filter(([sender, m]) => live.includes(sender) && fits(m)))
    const byReplica = new Map<number, readonly Float32Array[]>([[self, w.own]])
    for (const [sender, message] of received) byReplica.set(w.members.indexOf(sender), (message.sliced as NonNullable<InboundGradient['sliced']>).parts)
    if (w.signal?.aborted === true) return byReplica
    // every live member has sent: slices of evicted replicas go on with what is left; else (a
    // deadline, or members not waited for) each slice needs f+1 of its replicas
    const missing = live.filter((id) => !received.has(id))
    const needed = missing.length === 0 ? 1 : Math.min(w.f + 1, w.plan.replicas)
    const short = slicesShortOf(w.plan, byReplica, needed)
    if (short.length === 0) return byReplica
    if (!w.membership.isMemberAt(w.selfId, Number.MAX_SAFE_INTEGER)) return { kind: 'not-a-member' }
    const ahead = w.parts.sendersAhead(w.step).filter((id) => w.membership.isMemberAt(id, w.step))
    if (ahead.length > w.f) return { kind: 'behind', step: w.step, ahead, live, missing }
    w.log.warn({ step: w.step, slices: short, needed, missing },
      'step deadline passed short of the replicas\' results some slices need; waiting on')
    w.resend(missing)
    // everyone live has sent (or every one missing is gone) and a slice still lacks results: only
    // a membership change helps (a re-cut, the eviction); wait for it without spinning
    if (missing.every((id) => gaveUp?.(id) === true)) await new Promise((resolve) => setTimeout(resolve, Math.min(500, w.deadlineMs())))
  }
}
