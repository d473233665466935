/**
 * When a synchronous step may aggregate, and why it waits when it may not: the rule's floor, the
 * job's `quorum`, and the primary partition rule that keeps a job cut in two by the network from
 * training on as two jobs.
 *
 * Each side of a cut hears only its own members. If both halves of an even cut (3|3 of six with
 * trimmed mean f=1) could complete steps, each would count the other half as missing, evict it
 * and train on with parameters of its own, for ever (split-brain). So a step also needs more than
 * half of the step's members present, or exactly half when the step's most senior member (the
 * host, then in admission order; every member agrees on it) is among them: at most one side of
 * any cut goes on, the other waits until the link returns and then catches up or re-joins. This
 * is the tie-breaker of Corosync's votequorum `auto_tie_breaker` (the half holding one agreed
 * node stays quorate); a member cannot tell a cut link from a crash, so losing the most senior
 * member's half at once (2 of 4, or 1 of 2) stalls the job until one of them returns.
 */

import type { StepAggregation } from './step-types.js'

/** What one deadline round of a step has: who sent a gradient, and who is present at all. */
export interface QuorumInputs {
  /** the step's members (any order) */
  readonly live: readonly string[]
  /** gradients the step holds: received ones plus this peer's own when it contributes */
  readonly have: number
  /** members heard from at this step, this peer included (it is present even without a finite gradient) */
  readonly present: ReadonlySet<string>
  /** the step's most senior member (MembershipView.coordinatorAt with no suspects) */
  readonly senior: string | undefined
  /** the job's quorum, a fraction of `live` in (0, 1] */
  readonly quorum: number
  /** the aggregation rule's floor (2f+1; 2f+3 for Krum; 1 for mean) */
  readonly minInputs: number
}

export interface QuorumVerdict {
  /** gradients the step needs: the rule's floor and the quorum, whichever is more */
  readonly needed: number
  /** the step may aggregate what it holds */
  readonly met: boolean
  /**
   * enough gradients, but from half of the members or fewer without the most senior: the side
   * of a cut that must wait (set only when that alone holds the step)
   */
  readonly minorityOfCut: boolean
}

/**
 * Whether the members `present` (heard from, this peer included) are the side of any cut that
 * goes on: more than half of `live`, or exactly half with `senior` among them. Of two disjoint
 * sets of members at most one is.
 */
export function isPrimaryPartition(live: readonly string[], present: ReadonlySet<string>, senior: string | undefined): boolean {
  const here = live.filter((id) => present.has(id)).length
  return 2 * here > live.length || (2 * here === live.length && senior !== undefined && present.has(senior))
}

/** Whether a step may aggregate now (see the module comment for the rule and its source). */
export function stepQuorum(inputs: QuorumInputs): QuorumVerdict {
  const { live, have, present, senior } = inputs
  const needed = Math.max(inputs.minInputs, Math.ceil(inputs.quorum * live.length))
  const primary = isPrimaryPartition(live, present, senior)
  return { needed, met: have >= needed && primary, minorityOfCut: have >= needed && !primary }
}

/** A deadline round of a step that ended short: what it had (QuorumInputs' terms) and who did not send. */
export interface ShortRound {
  readonly live: readonly string[]
  readonly have: number
  readonly present: ReadonlySet<string>
  readonly senior: string | undefined
  /** stepQuorum's verdict: enough gradients, but this is the side of a cut that waits */
  readonly minorityOfCut: boolean
  /** members expected at the step that did not send */
  readonly missing: readonly string[]
  readonly aggregation: Pick<StepAggregation, 'minInputs' | 'describeShortfall'>
}

/**
 * Why a step waits after a short round, in words: `reason` for status (onWaiting), `stall` when
 * no step completes until the membership changes ('below-floor': a join) or a cut link returns
 * ('cut-off'), and the log line.
 */
export function describeShortRound(round: ShortRound): { reason: string, stall: 'below-floor' | 'cut-off' | undefined, logMessage: string } {
  const { live, have, missing, aggregation } = round
  if (live.length < aggregation.minInputs) {
    return { reason: aggregation.describeShortfall(live.length, 'live members'), stall: 'below-floor', logMessage: 'fewer live members than the aggregation rule needs: waiting for a peer to join' }
  }
  if (round.minorityOfCut) {
    const here = live.filter((id) => round.present.has(id)).length
    return {
      reason: `${here} of ${live.length} members heard from at this step, without the most senior (${round.senior ?? 'none'}): ` +
        'half of a job or less does not step without it, so two halves cut apart by the network cannot both train on; ' +
        'waiting for the others to be reachable again: a cut link that returns, or a crashed member restarted (this side then catches up, or re-joins if they evicted it)',
      stall: 'cut-off',
      logMessage: 'heard from half of the members or fewer, without the most senior: this side of a cut waits (split-brain guard)'
    }
  }
  return {
    reason: `${aggregation.describeShortfall(have, 'arrived')}${missing.length > 0 ? `; waiting on ${missing.join(', ')}` : ''}`,
    stall: undefined,
    logMessage: missing.length > 0
      ? 'step deadline passed short of the gradients the step needs; waiting on the missing members'
      // none missing, yet too few: the membership changed during the step (a reviewer saw it at
      // the same millisecond as a member's leave, when a whole job stopped; no deadline passed
      // then: the wait ended as the leaves emptied the expected set)
      : 'short of the gradients the step needs: members left during the step and no member expected at it is missing; waiting for the membership to settle'
  }
}
