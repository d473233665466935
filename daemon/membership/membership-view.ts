/**
 * Who is a member of the job at which step. Every change takes effect at an explicit step, so
 * peers that hear of it before reaching that step agree on the member list (and so on the
 * shards and on which gradients a step waits for) without a round of consensus. Peers that
 * disagree anyway end up with different parameters, which the parameter digests detect.
 */
export interface MemberRecord {
  readonly peerId: string
  /** first step this peer contributes to */
  joinStep: number
  /** first step it no longer contributes to (Infinity while it stays) */
  leaveStep: number
  /**
   * times it was admitted again after it left or was evicted (0: never), and the step its
   * previous membership ended at: a re-admission at the very step of the eviction leaves
   * `joinStep` and `leaveStep` as they were before it, and a peer that adopts the membership
   * only after both still sees that the member was replaced (membership-changes.ts)
   */
  readmissions: number
  previousLeaveStep: number | null
}

export interface MembershipSnapshot {
  readonly members: Array<{ peerId: string, joinStep: number, leaveStep: number | null, readmissions?: number, previousLeaveStep?: number }>
}

export class MembershipView {
  private readonly records = new Map<string, MemberRecord>()

  static fromSnapshot(snapshot: MembershipSnapshot): MembershipView {
    const view = new MembershipView()
    for (const m of snapshot.members) {
      view.records.set(m.peerId, { peerId: m.peerId, joinStep: m.joinStep, leaveStep: m.leaveStep ?? Infinity, readmissions: m.readmissions ?? 0, previousLeaveStep: m.previousLeaveStep ?? null })
    }
    return view
  }

  toSnapshot(): MembershipSnapshot {
    return {
      members: [...this.records.values()].map((r) => ({
        peerId: r.peerId,
        joinStep: r.joinStep,
        leaveStep: Number.isFinite(r.leaveStep) ? r.leaveStep : null,
        // only for a member admitted again: snapshots of memberships without one keep their shape
        ...(r.readmissions > 0 ? { readmissions: r.readmissions, previousLeaveStep: r.previousLeaveStep ?? 0 } : {})
      }))
    }
  }

  /** Sorted ids of the peers that contribute to `step`: the rank order used for sharding. */
  membersAt(step: number): string[] {
    const ids: string[] = []
    for (const r of this.records.values()) {
      if (r.joinStep <= step && step < r.leaveStep) ids.push(r.peerId)
    }
    return ids.sort()
  }

  isMemberAt(peerId: string, step: number): boolean {
    const r = this.records.get(peerId)
    return r !== undefined && r.joinStep <= step && step < r.leaveStep
  }

  /** True when the peer is or will be a member at some step >= `step`. */
  isKnown(peerId: string, step: number): boolean {
    const r = this.records.get(peerId)
    return r !== undefined && step < r.leaveStep
  }

  record(peerId: string): MemberRecord | undefined {
    return this.records.get(peerId)
  }

  /**
   * Add a peer from `effectiveStep` on; re-admits a peer that left, as the most junior member when
   * `asJunior` (an admission; not a resuming host taking its own place back). Returns whether
   * anything changed.
   */
  join(peerId: string, effectiveStep: number, asJunior = false): boolean {
    const existing = this.records.get(peerId)
    if (existing !== undefined && existing.joinStep <= effectiveStep && !Number.isFinite(existing.leaveStep)) return false
    if (existing !== undefined && Number.isFinite(existing.leaveStep) && existing.leaveStep <= effectiveStep) {
      // re-admission after an eviction or a clean leave; at the step it left from, the member
      // contributes to every step and keeps its join step (membersAt of earlier steps)
      existing.readmissions++
      existing.previousLeaveStep = existing.leaveStep
      if (existing.leaveStep < effectiveStep) existing.joinStep = effectiveStep
      existing.leaveStep = Infinity
      // the most junior now (seniority is admission order): a former senior re-admitted without a
      // state does not coordinate the members that carried the job on. It did, and where its own
      // admission's reply was held until the job went on (a resumed job waiting for minPeers), the
      // members asked it, still joining, and nobody decided the start (test/e2e/rejoin.test.ts)
      if (asJunior) {
        this.records.delete(peerId)
        this.records.set(peerId, existing)
      }
      return true
    }
    if (existing !== undefined) {
      const changed = existing.joinStep !== Math.min(existing.joinStep, effectiveStep) || Number.isFinite(existing.leaveStep)
      existing.joinStep = Math.min(existing.joinStep, effectiveStep)
      existing.leaveStep = Infinity
      return changed
    }
    this.records.set(peerId, { peerId, joinStep: effectiveStep, leaveStep: Infinity, readmissions: 0, previousLeaveStep: null })
    return true
  }

  /** The peer stops contributing from `effectiveStep` on (the earliest announced step wins). */
  leave(peerId: string, effectiveStep: number): boolean {
    const existing = this.records.get(peerId)
    if (existing === undefined) return false
    if (effectiveStep >= existing.leaveStep) return false
    existing.leaveStep = Math.max(effectiveStep, existing.joinStep)
    return true
  }

  /**
   * Make `peerId` the most senior record (it coordinates while a member): the member that resumes
   * the job from its checkpoint, where no member ranked before it came back. Returns whether the
   * order changed.
   */
  makeMostSenior(peerId: string): boolean {
    const record = this.records.get(peerId)
    if (record === undefined || this.records.keys().next().value === peerId) return false
    const rest = [...this.records.values()].filter((r) => r.peerId !== peerId)
    this.records.clear()
    for (const r of [record, ...rest]) this.records.set(r.peerId, r)
    return true
  }

  /** every peer ever admitted, most senior first (the host, then in admission order) */
  seniority(): string[] {
    return [...this.records.keys()]
  }

  /**
   * The peer that decides joins and evictions at `step`: the most senior member (records keep
   * the order peers were admitted in, the host first) not suspected by the caller. If it
   * crashes, the next most senior takes over.
   */
  coordinatorAt(step: number, suspected: ReadonlySet<string> = new Set()): string | undefined {
    for (const r of this.records.values()) {
      if (r.joinStep <= step && step < r.leaveStep && !suspected.has(r.peerId)) return r.peerId
    }
    return undefined
  }
}
