/**
 * What a synchronous step does when one deadline round of collecting the other members'
 * gradients ends (every expected one arrived, or the step deadline passed): aggregate, wait
 * another round, or give the step up. Pure: the step loop (sync-trainer.ts) gathers the facts
 * and carries the verdict out.
 */

/**
 * Deadline rounds a step waits beyond the first for a member at its first step (awaitNewcomer),
 * once the quorum's gradients are in: a joiner's state transfer, first ONNX Runtime run and send
 * all fall in its first step's deadline, and ten joiners on a busy 2-core machine took ~12 s
 * against a 5 s deadline
 */
export const JOINER_GRACE_ROUNDS = 2

export interface RoundFacts {
  readonly step: number
  /** the step's members as this peer sees them now, itself included */
  readonly live: readonly string[]
  /** gradients in hand for the step, this peer's own included */
  readonly have: number
  /** the quorum: max(the rule's minimum inputs, ceil(quorum x live)) */
  readonly needed: number
  /** expected members whose gradient has not come */
  readonly missing: readonly string[]
  /** gradients received from the others */
  readonly received: number
  /** this peer has a finite gradient of its own for the step */
  readonly contributes: boolean
  /** rounds this step already waited for newcomers with the quorum in */
  readonly graceRounds: number
  /** this peer is still a member at some step (not evicted) */
  readonly stillMember: boolean
  /** members of the step that already sent a gradient for a later step */
  sendersAhead(): readonly string[]
  /** the aggregation rule's f and minimum number of inputs */
  readonly f: number
  readonly minInputs: number
  /** whether to wait another round for `peer` (SyncTrainerDeps.awaitNewcomer) */
  awaitNewcomer?(peer: string, step: number): boolean
}

export type RoundVerdict =
  /** the quorum is in: aggregate what arrived */
  | { readonly kind: 'aggregate' }
  /** the quorum is in, but members at their first step are still coming: one more round */
  | { readonly kind: 'await-newcomers', readonly newcomers: readonly string[] }
  /** the others evicted this peer (any leave step: they finished this step without it) */
  | { readonly kind: 'not-a-member' }
  /** more than f members completed the step without this peer's gradient: catch up to their state */
  | { readonly kind: 'behind', readonly ahead: readonly string[] }
  /** no member, this one included, has a finite gradient: the job diverged */
  | { readonly kind: 'diverged' }
  /** short of the quorum: another round (belowFloor: fewer live members than the rule needs, only a join helps) */
  | { readonly kind: 'short', readonly belowFloor: boolean }

/** The verdict on a deadline round (see RoundVerdict's cases, in the order they are checked). */
export function judgeRound(facts: RoundFacts): RoundVerdict {
  if (facts.have >= facts.needed) {
    const newcomers = facts.graceRounds < JOINER_GRACE_ROUNDS && facts.awaitNewcomer !== undefined
      ? facts.missing.filter((id) => facts.awaitNewcomer?.(id, facts.step) === true)
      : []
    return newcomers.length === 0 ? { kind: 'aggregate' } : { kind: 'await-newcomers', newcomers }
  }
  // the others may have evicted this peer meanwhile (a cut link): stop waiting for them. Any
  // leave step counts, also one after this step: they finished this step without us, and its
  // gradients were lost on the dead link, so no quorum is ever coming
  if (!facts.stillMember) return { kind: 'not-a-member' }
  // members that already sent a later step completed this one without our gradient and will not
  // send theirs for it again: only a re-sync catches up with them. f+1 of them, since f could be
  // lying about a step far ahead (and only f+1 can vouch for a state)
  const ahead = facts.sendersAhead()
  if (ahead.length > facts.f) return { kind: 'behind', ahead }
  // nothing of its own to send and nothing from anyone: every member's gradient went non-finite
  // at once (the parameters are blowing up)
  if (!facts.contributes && facts.received === 0) return { kind: 'diverged' }
  return { kind: 'short', belowFloor: facts.live.length < facts.minInputs }
}
