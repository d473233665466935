/**
 * Membership changes of one job as one peer sees them: who is a member at which step, the
 * coordinator's decisions (admissions, evictions after missed steps, the start), adopting the
 * coordinator's announcements and the repeat announcements that keep members in step.
 * Every change takes effect at an explicit step (see MembershipView), so peers agree on shards
 * without a consensus round.
 */
import type { JobPhase, MembershipState } from '../../protocols/job/job-protocol.js'
import type { Logger } from '../logger.js'
import { MembershipView } from '../membership/membership-view.js'
import type { StepReport } from '../training/sync-trainer.js'
import { abortableSleep } from './abortable-sleep.js'
import { describeStartWait } from './start-wait-reason.js'
import { createAdmissionWindow } from './admission-window.js'
import type { JobNetwork } from './job-types.js'

/** steps between a join/eviction decision and the step it takes effect (time for the news to spread) */
export const MEMBERSHIP_MARGIN = 2
export interface JobMembershipOptions {
  readonly selfId: string
  /** this peer hosts the job: it is the first member and decides the start */
  readonly host: boolean
  /** members needed before step 0 */
  readonly minPeers: number
  /** consecutive misses after which the coordinator evicts a member */
  readonly evictAfterMissedSteps: number
  /** what a miss is, for the eviction's log line: a step (sync, the default) or an averaging round (async) */
  readonly missUnit?: 'steps' | 'averaging rounds'
  /**
   * async (asyncChangeStep): the step a change decided now takes effect at, given the earliest the
   * news allows (the current step + MEMBERSHIP_MARGIN); evictions then take effect there too, not at
   * the current step. Absent (sync): joins at that earliest step, evictions at the current step
   */
  changeStep?(earliest: number): number
  readonly network: Pick<JobNetwork, 'announceMembership'>
  readonly log: Logger
  /** the step the runner is at */
  step(): number
  /** what announcements say about the job */
  phase(): JobPhase
  /** a member was removed: drop what is buffered from it */
  onRemoved(peerId: string): void
  /** whether this peer heard from `peerId` lately (a message, a join request); absent: every member counts as heard */
  recentlyHeard?(peerId: string): boolean
}

export interface JobMembership {
  view(): MembershipView
  version(): number
  /** the versioned membership, as announced and stored in snapshots */
  state(): MembershipState
  /** take a snapshot's membership unless this peer already knows a newer one */
  restore(state: MembershipState): void
  /** the host is the first member, from step 0 */
  joinAsHost(): void
  /** the most senior member not suspected of missing steps decides changes */
  isCoordinator(): boolean
  /**
   * whether a membership announcement from `peerId` may change this peer's view: only from the
   * coordinator as this peer sees it (the most senior live member it does not suspect of missing
   * steps), or from a live member more senior than that one (a coordinator it suspected that is
   * back). Not from any other member: one member could otherwise evict the others, or admit
   * peers of its own, in everyone's view. A new coordinator taking over from a crashed one is
   * heard once this peer suspects the crashed one too (it repeats its announcement every second).
   * A peer the others evicted while it was cut off learns it from the state it catches up to
   * (restore), not from an announcement: one that removes the receiver is no exception, or any
   * member could evict every other from its own view
   */
  mayAnnounce(peerId: string): boolean
  /** announce the current membership (fire and forget; failures are logged at debug) */
  announce(): void
  /**
   * until step 0 (or a resumed step) may run: the host announces the start once minPeers joined;
   * members wait for it. A host resumed from its checkpoint after asking its members (none ran
   * the job) counts the others listed there only once heard from since; once minPeers of them are
   * back, the rest leave from the resumed step
   */
  awaitStart(signal: AbortSignal): Promise<void>
  /** what the start waits for, in words (for `p2pmld status`); call only before the start */
  startWaitReason(): string
  /** the members that count toward the start now (a resumed host's listed members only once back); call only before the start */
  countedAtStart(): number
  /** count each member's consecutive missed steps (an async step without an averaging round counts none); the coordinator evicts past the limit */
  recordMisses(report: StepReport): void
  /**
   * a deadline round of `step` ended short of the gradients it needs: count it as a miss for
   * `missing`; the coordinator evicts past the limit from this step (nobody can complete it).
   * `lagging`: those of `missing` that are alive one step behind (they sent step - 1 and are
   * heard from): not counted, and counted as heard from for the majority check
   */
  recordShortRound(step: number, live: readonly string[], missing: readonly string[], lagging?: readonly string[]): void
  /**
   * coordinator: admit a peer; resolves with the step it joins at: 0 before the start, the
   * current step when the job waits for members ('now': no step can run without it), else
   * MEMBERSHIP_MARGIN steps on, at once or, within ADMISSION_WINDOW_MS of the last admission,
   * after a window that gathers the joiners asking meanwhile, who all join at one step; never a
   * step before the current one (a member asking again takes the current state). Rejects once
   * close() ran.
   */
  admit(peerId: string, when: 'before-start' | 'now' | 'later'): Promise<{ effectiveStep: number, membership: MembershipState }>
  /**
   * before the start: a peer admitted 'before-start' that never got the reply (its request
   * stream closed: it crashed or gave up waiting) no longer counts toward the start. While a
   * resumed host waits for the members its checkpoint lists, such a member stays listed, not back
   * until heard from again; any other member leaves from the current step (the step the job
   * starts at). `why`: for the log (it went away, or its wait ran out and it asks again). Returns
   * whether anything changed. Call only before the start
   */
  withdraw(peerId: string, why: string): boolean
  /** the job stopped: admissions waiting in the window are refused */
  close(): void
  /**
   * a member announced it leaves from `effectiveStep`; ignored when it names this peer or a step
   * before the member's current join step (an earlier process of a member that re-joined).
   * Returns false when ignored
   */
  memberLeaving(peerId: string, effectiveStep: number): boolean
  /**
   * a host resuming the job from its checkpoint at `step` is a member there (and so its
   * coordinator until others re-join). `othersRestarting`: it asked the members it knew and none
   * runs the job; those listed at `step` count toward minPeers once heard from (awaitStart)
   */
  resumeAsHost(step: number, othersRestarting?: boolean): void
  /** a coordinator's announcement; returns whether it was newer than ours */
  adopt(state: MembershipState): boolean
}

export function createJobMembership(options: JobMembershipOptions): JobMembership {
  const { selfId, log } = options
  let view = new MembershipView()
  let version = 0
  const misses = new Map<string, number>()

  const state = (): MembershipState => ({ version, ...view.toSnapshot() })
  /**
   * a host resumed from its checkpoint after asking the members it knew (none ran the job), until
   * its start: the members listed there heard from since
   */
  let resumed: { readonly back: Set<string>, readonly listed: ReadonlySet<string>, logged: boolean } | undefined
  let closed = false

  const announce = (): void => {
    options.network.announceMembership(state(), options.step(), options.phase()).catch((error: unknown) => {
      log.debug({ err: error }, 'membership announcement failed')
    })
  }

  /** adds `peers` from `effectiveStep` on: one version, one announcement */
  const join = (peers: readonly string[], effectiveStep: number, announceIt: boolean): void => {
    let changed = false
    for (const peerId of peers) {
      const before = view.record(peerId) !== undefined
      if (!view.join(peerId, effectiveStep, true)) {
        // a new process of a member still live here (restarted before it was evicted): this view
        // does not change, but a member that its restarted daemon told the previous process left
        // (job-joiner.ts) dropped it from its own, with no new version, and waited for good at a
        // step below the aggregation floor. A new version, announced, puts it back in every view
        if (view.isKnown(peerId, effectiveStep)) {
          changed = true
          log.info({ peer: peerId, effectiveStep }, 'admitted a new process of a member: announcing the membership again')
        }
        continue
      }
      changed = true
      misses.delete(peerId)
      log.info({ peer: peerId, effectiveStep }, before ? 'admitted a former member again' : 'admitted a new member')
    }
    if (!changed) return
    version++
    if (announceIt) announce()
  }

  /** joiners of the running job ('later'), admitted MEMBERSHIP_MARGIN steps on, in crowds */
  const admissions = createAdmissionWindow((peers) => {
    const earliest = options.step() + MEMBERSHIP_MARGIN
    const effectiveStep = options.changeStep?.(earliest) ?? earliest
    join(peers, effectiveStep, true)
    if (peers.length > 1) log.info({ joiners: peers.length, effectiveStep }, 'admitted joiners together')
  })

  const suspected = (): Set<string> => new Set([...misses.entries()].filter(([, m]) => m > 0).map(([id]) => id))
  /**
   * the step an admitted peer fetches the state of and starts at: its join step, but never before
   * the current step. A member asking again (restarted before the others evicted it, or evicted
   * and re-admitted at one step: its record keeps its first join step) is a new process that must
   * take the current state, not one of any step since it first joined
   */
  const joinsAt = (peerId: string): number => Math.max(view.record(peerId)?.joinStep ?? options.step(), options.step())
  /**
   * whether a member counts toward minPeers at the start: every member, except on a resumed host
   * the members its checkpoint lists, until heard from. Members stopped together restart as
   * joiners without a state: a resumed step that counted on them waited out its deadline for
   * gradients they could not send (test/e2e/rejoin.test.ts, about 1 run in 10)
   */
  const isBack = (peerId: string): boolean => {
    if (resumed === undefined || options.recentlyHeard === undefined) return true
    if (options.recentlyHeard(peerId)) resumed.back.add(peerId)
    return resumed.back.has(peerId)
  }
  /**
   * a resumed host at its start: the members listed at `step` not back (`back`) leave from
   * `step`. Counted on, each would hold every step to its deadline until evicted (three steps,
   * ~90 s at the default deadline); gone, one that comes back re-joins as a joiner of the running job
   */
  const settleResume = (step: number, back: readonly string[]): void => {
    resumed = undefined
    const gone = view.membersAt(step).filter((id) => !back.includes(id))
    if (gone.length === 0) return
    for (const peer of gone) {
      view.leave(peer, step)
      options.onRemoved(peer)
    }
    version++
    log.info({ step, left: gone, reJoined: back.length }, 'resuming with the members that re-joined: the others the checkpoint lists leave from the resumed step (they re-join when they come back)')
  }
  const isCoordinator = (): boolean => view.coordinatorAt(options.step(), suspected()) === selfId

  const countMisses = (members: readonly string[], missing: readonly string[]): void => {
    for (const member of members) {
      if (member === selfId) continue
      misses.set(member, missing.includes(member) ? (misses.get(member) ?? 0) + 1 : 0)
    }
  }

  /** coordinator: members past the miss limit leave from `step` (async: from changeStep's step) */
  const evictOverLimit = (step: number): void => {
    if (!isCoordinator()) return
    let changed = false
    for (const [peer, count] of misses) {
      if (count >= options.evictAfterMissedSteps && view.isKnown(peer, step)) {
        const fromStep = options.changeStep?.(step + MEMBERSHIP_MARGIN) ?? step
        log.warn({ peer, missedSteps: count, fromStep }, `evicting a member that missed too many ${options.missUnit ?? 'steps'}`)
        changed = view.leave(peer, fromStep) || changed
        options.onRemoved(peer)
        misses.delete(peer)
      }
    }
    if (changed) {
      version++
      announce()
    }
  }

  return {
    view: () => view,
    version: () => version,
    state,
    restore(restored) {
      if (restored.version < version) return
      view = MembershipView.fromSnapshot(restored)
      version = restored.version
    },
    joinAsHost() {
      view.join(selfId, 0)
    },
    resumeAsHost(step, othersRestarting = false) {
      // its checkpoint may hold its own leave (written while every member stopped, after it
      // adopted a membership in which it had left): with no member at the resumed step there is
      // no coordinator to admit the others, and the job waits for ever
      if (!view.isMemberAt(selfId, step) && view.join(selfId, step)) version++
      // a junior resuming (no member ranked before it came back within its grace) coordinates the
      // job it resumes: ranked behind a senior its checkpoint still lists, it named that one as the
      // coordinator, which came back later as a joiner, asked itself, and nobody decided the start
      if (view.makeMostSenior(selfId)) version++
      // and it may list the others there (their leaves arrived after it was written): restarted
      // too, they come back as joiners with no state, so they count once heard from (awaitStart).
      // Not where the others may run on (no probe told): there it steps, and learns from them
      if (othersRestarting) resumed = { back: new Set([selfId]), listed: new Set(view.membersAt(step)), logged: false }
    },
    isCoordinator,
    mayAnnounce(peerId) {
      const step = options.step()
      if (!view.isKnown(peerId, step)) return false
      const coordinator = view.coordinatorAt(step, suspected())
      if (coordinator === undefined) return true
      const seniority = view.seniority()
      return seniority.indexOf(peerId) <= seniority.indexOf(coordinator)
    },
    announce,
    async awaitStart(signal) {
      while (!signal.aborted) {
        // a host resumed from a checkpoint (step > 0) waits for minPeers members too, as at step 0;
        // peers joining a running job do not wait
        const step = options.step()
        const members = view.membersAt(step).filter(isBack)
        if (resumed !== undefined) {
          const listed = view.membersAt(step).length
          if (members.length >= options.minPeers || members.length === listed) settleResume(step, members)
          else if (!resumed.logged) {
            resumed.logged = true
            log.info({ step, listed, reJoined: members.length, minPeers: options.minPeers }, 'resumed from the checkpoint: waiting for minPeers of its members to re-join before the job goes on')
          }
        }
        if ((step > 0 && !options.host) || (members.length >= options.minPeers && members.includes(selfId) && version > 0) || (options.host && options.minPeers <= 1)) return
        if (options.host && members.length >= options.minPeers) {
          version++
          announce()
          return
        }
        if (options.host) announce()
        await abortableSleep(250, signal)
      }
    },
    countedAtStart: () => view.membersAt(options.step()).filter(isBack).length,
    startWaitReason() {
      const step = options.step()
      const listed = view.membersAt(step)
      const host = view.seniority()[0]
      return describeStartWait({
        step,
        minPeers: options.minPeers,
        host: options.host,
        listed,
        notBack: resumed === undefined ? [] : listed.filter((id) => !isBack(id)),
        silentHost: host !== undefined && host !== selfId && options.recentlyHeard !== undefined && !options.recentlyHeard(host) ? host : undefined
      })
    },
    recordMisses(report) {
      if (report.missesUncounted === true) return
      countMisses(report.members, report.missing)
      evictOverLimit(options.step())
    },
    recordShortRound(step, live, missing, lagging = []) {
      // a peer that heard from at most half of the live members may be the one cut off: it must
      // not count the majority as missing (it would evict them from its own view, as coordinator
      // once it suspects every more senior member), so only a majority side counts misses. A
      // member still at the step before is alive: a peer that crashed after sending its gradient
      // to this one but not to that one leaves it there, and with three members this one would
      // otherwise hear from a minority, count nothing and never evict the crashed peer
      if (2 * (live.length - missing.length + lagging.length) <= live.length) return
      // only members that did not send count: one that did is not reset, its step is not done
      for (const member of missing) if (member !== selfId && !lagging.includes(member)) misses.set(member, (misses.get(member) ?? 0) + 1)
      evictOverLimit(step)
    },
    async admit(peerId, when) {
      if (closed) throw new Error('the job stopped')
      if (when === 'later') await admissions.admit(peerId)
      else join([peerId], options.step(), when !== 'before-start')
      return { effectiveStep: joinsAt(peerId), membership: state() }
    },
    withdraw(peerId, why) {
      if (peerId === selfId) return false
      const step = options.step()
      if (resumed?.listed.has(peerId) === true) {
        const wasBack = resumed.back.delete(peerId)
        if (wasBack) log.info({ peer: peerId, step, why }, 'withdrew the admission of a member that re-joined, its reply held until the job goes on: not back until heard from again')
        return wasBack
      }
      resumed?.back.delete(peerId)
      // a new joiner, or a member the checkpoint lists once all those listed were back (below
      // minPeers the job still waits): it leaves from the step the job starts at, and is admitted
      // again if it asks again
      if (!view.isMemberAt(peerId, step) || !view.leave(peerId, step)) return false
      options.onRemoved(peerId)
      version++
      log.info({ peer: peerId, step, why }, 'withdrew the admission of a joiner, its reply held until the job starts: it no longer counts toward the start until it asks again')
      return true
    },
    close() {
      closed = true
      admissions.close()
    },
    memberLeaving(peerId, effectiveStep) {
      // a leave naming this peer, or for a step before the member's current join, was sent by an
      // earlier process with the same key (a daemon stopped and started again re-joins at a later
      // step, and its old leave can still reach the members, itself included, over gossip): it
      // would end the membership the new process was just given
      const record = view.record(peerId)
      if (peerId === selfId || (record !== undefined && effectiveStep < record.joinStep)) {
        log.debug({ peer: peerId, effectiveStep, joinStep: record?.joinStep }, 'ignored a leave sent before the member (re-)joined')
        return false
      }
      if (view.leave(peerId, Math.max(effectiveStep, 0))) {
        log.info({ peer: peerId, effectiveStep }, 'a member is leaving')
        options.onRemoved(peerId)
        if (isCoordinator()) {
          version++
          announce()
        }
      }
      return true
    },
    adopt(announced) {
      if (announced.version <= version) return false
      view = MembershipView.fromSnapshot(announced)
      version = announced.version
      const step = options.step()
      for (const id of [...misses.keys()]) if (!view.isKnown(id, step)) misses.delete(id)
      return true
    }
  }
}
