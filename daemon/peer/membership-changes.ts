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

export function createMembershipChangeTracker(leaveAnnouncedAt: (peerId: string) => number | undefined): MembershipChangeTracker {
  let previous: Set<string> | undefined
  /** step at which each current member was last seen joining */
  const joinedAt = new Map<string, number>()
  return {
    observe(step, members) {
      const current = new Set(members)
      const changes: MembershipChange[] = []
      if (previous === undefined) {
        for (const m of current) joinedAt.set(m, step)
      } else {
        for (const m of current) {
          if (previous.has(m)) continue
          joinedAt.set(m, step)
          changes.push({ kind: 'joined', peerId: m, step, members: current.size })
        }
        for (const m of previous) {
          if (current.has(m)) continue
          const announced = leaveAnnouncedAt(m)
          const left = announced !== undefined && announced >= (joinedAt.get(m) ?? 0)
          joinedAt.delete(m)
          changes.push({ kind: left ? 'left' : 'evicted', peerId: m, step, members: current.size })
        }
      }
      previous = current
      return changes
    }
  }
}
