/**
 * Membership changes as events people and metrics understand: a peer joined, left (it announced
 * its leave) or was evicted (the members stopped counting on it without one). Derived from the
 * member lists of consecutive step reports, so every change is reported at the step it took
 * effect, once; a member evicted and admitted again between two observations (same list) from
 * its record's count of re-admissions.
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
   * The changes between the previous observation's members and these (none for the first).
   * `source`: 'report' for the members of a step just done, 'membership' for the members at the
   * step in progress when the membership changed (default 'report'). A 'membership' observation
   * reports leaves only: a join is reported by the first report that lists the member, once the
   * step it joined at is settled. `leaveAnnouncedAt(peer)` is the step a peer announced it leaves
   * from, if it did.
   */
  observe(step: number, members: readonly string[], source?: 'report' | 'membership'): MembershipChange[]
}

/**
 * `effectiveStep(peer)`, when given, is the membership's own record of the member: the step its
 * current membership began and (if it ended) the step it ended. A change is then reported at that
 * step, not the step this peer noticed it at, so every member prints the same step for it (one
 * that noticed an eviction a step later would otherwise report it a step later).
 */
export function createMembershipChangeTracker(
  leaveAnnouncedAt: (peerId: string) => number | undefined,
  effectiveStep?: (peerId: string) => { readonly joinStep: number, readonly leaveStep: number, readonly readmissions?: number, readonly previousLeaveStep?: number | null } | undefined
): MembershipChangeTracker {
  let previousStep = -1
  // the recorded step if it falls between the last observation and this one: one before belongs to
  // another membership, one after to a later change. A re-admitted member's membership began at
  // the later of its join step and the step it had left at (re-admitted at the step it left from,
  // it keeps its first join step in the record). A join may be recorded at the very step of the
  // last observation, when its admission came after it: a member evicted at step 14 and admitted
  // again at 14, after this peer had observed the eviction at 14, joined at 14 (its own console and
  // the admitting host said 14, the other members said 15). A re-join is bounded by the step its
  // leave was reported at rather than by the last observation (leftAt below). So may a leave: a
  // step's report lists the members at its start, and a leave from that step can come during it
  // (a clean leave announced as the leaver finished the step before): the members that stayed said
  // 'left at step 281' where the leaver, the logs and the run report said 280
  const at = (peer: string, observed: number, which: 'joinStep' | 'leaveStep'): number => {
    const record = effectiveStep?.(peer)
    const recorded = record === undefined
      ? undefined
      : which === 'joinStep' && (record.readmissions ?? 0) > 0
        ? Math.max(record.joinStep, record.previousLeaveStep ?? record.joinStep)
        : record[which]
    const after = recorded !== undefined && recorded >= (which === 'joinStep' ? leftAt.get(peer) ?? previousStep : previousStep)
    return recorded !== undefined && Number.isFinite(recorded) && after && recorded <= observed ? recorded : observed
  }
  /**
   * the step each peer's last leave was reported at: a re-admission recorded before this peer's
   * last observation but not before that leave is the membership that followed it. The admission
   * can reach a member late (after it observed a later step without the peer): rejoin.test.ts saw
   * 'joined at step 25' on such a member where the joiner and the admitting host said 24
   */
  const leftAt = new Map<string, number>()
  let previous: Set<string> | undefined
  let previousSource: 'report' | 'membership' = 'report'
  /** step at which each current member was last seen joining */
  const joinedAt = new Map<string, number>()
  /** each current member's count of re-admissions when last observed */
  const readmissionsSeen = new Map<string, number>()
  const readmissions = (peer: string): number => effectiveStep?.(peer)?.readmissions ?? 0
  const leaveKind = (peer: string): MembershipChangeKind => {
    const announced = leaveAnnouncedAt(peer)
    return announced !== undefined && announced >= (joinedAt.get(peer) ?? 0) ? 'left' : 'evicted'
  }
  return {
    observe(step, members, source = 'report') {
      // fed from step reports and from membership-version changes (session-core.ts): a report of
      // a step before one already observed would bring a member that left back, and its next
      // observation would count the same leave twice
      if (step < previousStep) return []
      // so would the report of the very step a membership change was seen at: a leave taking
      // effect at the step in progress can reach this peer after the step counted the leaver
      // (seen on a loaded machine: 'left at step 346', 'joined at step 346', 'left at step 347'
      // for one clean leave, and 2 leaves in the metrics). Such a report adds no member; a member
      // it no longer lists (a leave that came after the observation) did leave at this step
      const sameStep = step === previousStep && source === 'report' && previousSource === 'membership'
      // and a membership observation adds no member either (nor a re-admission): an admission's
      // step can still change after this peer first sees it (rejoin.test.ts: a member that printed
      // the first version it saw, while the job waited below its aggregation floor, said 19 where
      // the joiner and the host said 20). The step's report lists the member once it is settled,
      // and the record gives the step it joined at
      const current = new Set((sameStep || source === 'membership') && previous !== undefined ? members.filter((m) => previous!.has(m)) : members)
      const changes: MembershipChange[] = []
      if (previous === undefined) {
        for (const m of current) {
          joinedAt.set(m, step)
          readmissionsSeen.set(m, readmissions(m))
        }
      } else {
        for (const m of current) {
          const count = readmissions(m)
          if (previous.has(m)) {
            if (count <= (readmissionsSeen.get(m) ?? count) || source === 'membership') continue
            // evicted (or left) and admitted again, both after the last observation: the list
            // is the same, the record says it was replaced at its previous leave step
            const record = effectiveStep?.(m)
            const leftStep = Math.min(record?.previousLeaveStep ?? step, step)
            const rejoinedAt = Math.max(record?.joinStep ?? leftStep, leftStep)
            changes.push({ kind: leaveKind(m), peerId: m, step: leftStep, members: current.size - 1 })
            changes.push({ kind: 'joined', peerId: m, step: rejoinedAt, members: current.size })
            leftAt.set(m, leftStep)
            joinedAt.set(m, step)
            readmissionsSeen.set(m, count)
            continue
          }
          joinedAt.set(m, step)
          readmissionsSeen.set(m, count)
          changes.push({ kind: 'joined', peerId: m, step: at(m, step, 'joinStep'), members: current.size })
        }
        for (const m of previous) {
          if (current.has(m)) continue
          const kind = leaveKind(m)
          joinedAt.delete(m)
          readmissionsSeen.delete(m)
          const leftStep = at(m, step, 'leaveStep')
          leftAt.set(m, leftStep)
          changes.push({ kind, peerId: m, step: leftStep, members: current.size })
        }
      }
      previous = current
      previousStep = step
      previousSource = source
      return changes
    }
  }
}
