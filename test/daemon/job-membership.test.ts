/** The runner's membership: a host that resumes the job from its checkpoint is its member again. */
import { describe, expect, it } from 'vitest'
import { createJobMembership } from '../../daemon/job/job-membership.js'
import { silentLogger } from '../../daemon/logger.js'

describe('job membership', () => {
  it('a host resuming from a checkpoint that holds its own leave is a member, and the coordinator, at the resumed step', () => {
    const membership = createJobMembership({
      selfId: 'host', host: true, minPeers: 3, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => 21, phase: () => 'waiting', onRemoved: () => {}
    })
    // every member stopped at once: the host adopted a membership in which all three had left
    membership.restore({ version: 7, members: [{ peerId: 'host', joinStep: 0, leaveStep: 21 }, { peerId: 'a', joinStep: 0, leaveStep: 21 }, { peerId: 'b', joinStep: 0, leaveStep: 22 }] })
    expect(membership.view().isMemberAt('host', 21)).toBe(false)
    membership.resumeAsHost(21)
    expect(membership.view().isMemberAt('host', 21)).toBe(true)
    expect(membership.view().coordinatorAt(21)).toBe('host')
    expect(membership.view().membersAt(22)).toEqual(['host'])
    expect(membership.version()).toBe(8)
    // already a member: nothing changes
    membership.resumeAsHost(21)
    expect(membership.version()).toBe(8)
  })

  it('a host resuming from a checkpoint that lists the others at the resumed step starts only once they re-joined (or its wait for them ran out)', async () => {
    const heard = new Set<string>()
    const make = (resumeWaitMs: number) => {
      const membership = createJobMembership({
        selfId: 'host', host: true, minPeers: 3, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
        log: silentLogger(), step: () => 28, phase: () => 'waiting', onRemoved: () => {}, recentlyHeard: (peer) => heard.has(peer), resumeWaitMs
      })
      // every member stopped at once; the host's last step had ended short and its checkpoint
      // (at 28) was written before the others' leaves (from 29) were recorded
      // (rejoin.test.ts, 1 run in 12): they restart as joiners, without a state at 28
      membership.restore({ version: 4, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'a', joinStep: 0, leaveStep: 29 }, { peerId: 'b', joinStep: 0, leaveStep: 29 }] })
      membership.resumeAsHost(28, true)
      return membership
    }
    const started = async (p: Promise<void>, withinMs: number): Promise<boolean> => await Promise.race([p.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), withinMs))])

    const membership = make(60_000)
    expect(membership.view().membersAt(28)).toEqual(['a', 'b', 'host'])
    const abort = new AbortController()
    const start = membership.awaitStart(abort.signal)
    expect(await started(start, 700)).toBe(false)
    // one re-joins (its join request is heard), and is admitted at the resumed step itself
    heard.add('a')
    expect((await membership.admit('a', 'before-start')).effectiveStep).toBe(28)
    expect(await started(start, 700)).toBe(false)
    heard.add('b')
    expect((await membership.admit('b', 'before-start')).effectiveStep).toBe(28)
    expect(await started(start, 1_000)).toBe(true)
    expect(membership.view().membersAt(28)).toEqual(['a', 'b', 'host'])
    // heard once is enough: a member need not be heard again while the start waits for the rest
    heard.clear()

    // nobody comes back (crashed for good, or cut off): after the wait the checkpoint's members count again
    const t0 = performance.now()
    await make(400).awaitStart(new AbortController().signal)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(390)
    abort.abort()
  })

  it('the coordinator evicts a peer that crashed after sending its gradient to it but not to the third member', () => {
    const make = () => {
      const removed: string[] = []
      const membership = createJobMembership({
        selfId: 'host', host: true, minPeers: 3, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
        log: silentLogger(), step: () => 13, phase: () => 'training', onRemoved: (peer) => removed.push(peer)
      })
      membership.restore({ version: 1, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'stays', joinStep: 0, leaveStep: Infinity }, { peerId: 'dead', joinStep: 0, leaveStep: Infinity }] })
      return { membership, removed }
    }
    // the host finished step 12 with dead's gradient; stays never got it and waits at 12: at 13
    // the host misses both. Told that stays is alive one step behind, it counts dead alone
    const told = make()
    for (let round = 0; round < 3; round++) told.membership.recordShortRound(13, ['host', 'stays', 'dead'], ['stays', 'dead'], ['stays'])
    expect(told.removed).toEqual(['dead'])
    expect(told.membership.view().membersAt(13)).toEqual(['host', 'stays'])
    // not told: it hears from a minority and counts nothing (the stall the rejoin test met in CI)
    const blind = make()
    for (let round = 0; round < 3; round++) blind.membership.recordShortRound(13, ['host', 'stays', 'dead'], ['stays', 'dead'])
    expect(blind.removed).toEqual([])
  })

  it('takes a membership announcement only from the coordinator it sees or a live member more senior than it', () => {
    const membership = createJobMembership({
      selfId: 'b', host: false, minPeers: 3, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => 9, phase: () => 'training', onRemoved: () => {}
    })
    membership.restore({ version: 5, members: ['host', 'a', 'b', 'c', 'gone'].map((peerId) => ({ peerId, joinStep: 0, leaveStep: peerId === 'gone' ? 4 : null })) })
    expect(membership.mayAnnounce('host')).toBe(true)
    // a member that is not the coordinator, another less senior, a former member: no
    for (const peer of ['a', 'c', 'gone', 'stranger']) expect(membership.mayAnnounce(peer), peer).toBe(false)
    // the host missed a round (this peer suspects it): 'a' coordinates now, the host may still
    membership.recordShortRound(9, ['host', 'a', 'b', 'c'], ['host'])
    expect(membership.mayAnnounce('a')).toBe(true)
    expect(membership.mayAnnounce('host')).toBe(true)
    expect(membership.mayAnnounce('c')).toBe(false)
  })

  it('a member evicted at a step and admitted again at that step joins at that step, not at its first join', async () => {
    const removed: string[] = []
    const membership = createJobMembership({
      selfId: 'host', host: true, minPeers: 3, evictAfterMissedSteps: 1, network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => 17, phase: () => 'training', onRemoved: (peer) => removed.push(peer)
    })
    membership.restore({ version: 1, members: ['host', 'stays', 'back'].map((peerId) => ({ peerId, joinStep: 0, leaveStep: Infinity })) })
    membership.recordShortRound(17, ['host', 'stays', 'back'], ['back'])
    expect(removed).toEqual(['back'])
    expect(membership.view().membersAt(17)).toEqual(['host', 'stays'])
    // the job is below the rule's floor: admitted at once, at 17; it fetches the state of step 17
    const { effectiveStep } = await membership.admit('back', 'now')
    expect(effectiveStep).toBe(17)
    expect(membership.view().membersAt(17)).toEqual(['back', 'host', 'stays'])
    // its record still covers the steps it was a member at before
    expect(membership.view().isMemberAt('back', 5)).toBe(true)
    // a member asking again before any eviction (restarted at once) takes the current step's state too
    expect((await membership.admit('stays', 'later')).effectiveStep).toBe(17)
    expect(membership.view().membersAt(17)).toEqual(['back', 'host', 'stays'])
  })
  it('a leave sent by an earlier process of a member that re-joined, or naming this peer, leaves the membership as it is', () => {
    const removed: string[] = []
    const membership = createJobMembership({
      selfId: 'b', host: false, minPeers: 2, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => 41, phase: () => 'training', onRemoved: (peer) => removed.push(peer)
    })
    // 'a' left from step 38 and re-joined at 40; 'b' (this process) too: both were stopped and
    // started again, and their old processes' leaves can still arrive over gossip
    membership.restore({ version: 9, members: [{ peerId: 'host', joinStep: 0, leaveStep: null }, { peerId: 'a', joinStep: 40, leaveStep: null }, { peerId: 'b', joinStep: 40, leaveStep: null }] })
    membership.memberLeaving('a', 38)
    membership.memberLeaving('b', 38)
    membership.memberLeaving('b', 45)
    expect(membership.view().membersAt(41)).toEqual(['a', 'b', 'host'])
    expect(removed).toEqual([])
    // a leave of the process that re-joined counts
    membership.memberLeaving('a', 44)
    expect(membership.view().membersAt(44)).toEqual(['b', 'host'])
    expect(removed).toEqual(['a'])
  })
})
