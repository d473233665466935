/**
 * Membership changes as events people and metrics understand: a peer joined, left (it announced
 * its leave) or was evicted (the members stopped counting on it without one). Derived from the
 * member lists of consecutive step reports, so every change is reported at the step it took
 * effect, once.
 */
export type MembershipChangeKind = 'joined' | 'left' | 'evicted'

export interface MembershipChange {
  readonly kind: MembershipChangeKind
  readonly peerId: string
  /** the first step with the new member list */
  readonly step: number
  /** members after the change */
  readonly members: number
}

export interface MembershipChangeTracker {
  /**
   * The changes between the previous report's members and these (none for the first report).
   * `leaveAnnouncedAt(peer)` is the step a peer announced it leaves from, if it did.
   */
  observe(step: number, members: readonly string[]): MembershipChange[]
}

/**
 * `effectiveStep(peer)`, when given, is the membership's own record of the member: the step its
 * current membership began and (if it ended) the step it ended. A change is then reported at that
 * step, not the step this peer noticed it at, so every member prints the same step for it (one
 * that noticed an eviction a step later would otherwise report it a step later).
 */
export function createMembershipChangeTracker(
  leaveAnnouncedAt: (peerId: string) => number | undefined,
  effectiveStep?: (peerId: string) => { readonly joinStep: number, readonly leaveStep: number } | undefined
): MembershipChangeTracker {
  let previousStep = -1
  // the recorded step if it falls between the last observation and this one: one before belongs to
  // another membership (a member re-admitted at the step it was evicted at keeps its first join
  // step in the record), one after to a later change
  const at = (peer: string, observed: number, which: 'joinStep' | 'leaveStep'): number => {
    const recorded = effectiveStep?.(peer)?.[which]
    return recorded !== undefined && Number.isFinite(recorded) && recorded > previousStep && recorded <= observed ? recorded : observed
  }
  let previous: Set<string> | undefined
  /** step at which each current member was last seen joining */
  const joinedAt = new Map<string, number>()
  return {
    observe(step, members) {
      // fed from step reports and from membership-version changes (session-core.ts): a report of
      // a step before one already observed would bring a member that left back, and its next
      // observation would count the same leave twice
      if (step < previousStep) return []
      const current = new Set(members)
      const changes: MembershipChange[] = []
      if (previous === undefined) {
        for (const m of current) joinedAt.set(m, step)
      } else {
        for (const m of current) {
          if (previous.has(m)) continue
          joinedAt.set(m, step)
          changes.push({ kind: 'joined', peerId: m, step: at(m, step, 'joinStep'), members: current.size })
        }
        for (const m of previous) {
          if (current.has(m)) continue
          const announced = leaveAnnouncedAt(m)
          const left = announced !== undefined && announced >= (joinedAt.get(m) ?? 0)
          joinedAt.delete(m)
          changes.push({ kind: left ? 'left' : 'evicted', peerId: m, step: at(m, step, 'leaveStep'), members: current.size })
        }
      }
      previous = current
      previousStep = step
      return changes
    }
  }
}
