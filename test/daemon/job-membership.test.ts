/** The runner's membership: a host that resumes the job from its checkpoint is its member again. */
import { describe, expect, it } from 'vitest'
import { createJobMembership } from '../../daemon/job/job-membership.js'
import { asyncChangeStep } from '../../daemon/training/async-trainer.js'
import type { StepReport } from '../../daemon/training/step-types.js'
import { PassThrough } from 'node:stream'
import { createLogger, silentLogger } from '../../daemon/logger.js'

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

  it('a host resuming from a checkpoint that lists the others at the resumed step counts them once they re-joined; once minPeers are back the rest leave', async () => {
    const heard = new Set<string>()
    const removed: string[] = []
    const make = (minPeers: number) => {
      heard.clear()
      removed.length = 0
      const membership = createJobMembership({
        selfId: 'host', host: true, minPeers, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
        log: silentLogger(), step: () => 28, phase: () => 'waiting', onRemoved: (peer) => removed.push(peer), recentlyHeard: (peer) => heard.has(peer)
      })
      // every member stopped at once; the host's last step had ended short and its checkpoint
      // (at 28) was written before the others' leaves (from 29) were recorded
      // (rejoin.test.ts, 1 run in 12): they restart as joiners, without a state at 28
      membership.restore({ version: 4, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'a', joinStep: 0, leaveStep: 29 }, { peerId: 'b', joinStep: 0, leaveStep: 29 }] })
      membership.resumeAsHost(28, true)
      return membership
    }
    const started = async (p: Promise<void>, withinMs: number): Promise<boolean> => await Promise.race([p.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), withinMs))])

    // minPeers 3: it waits for both, and admits each at the resumed step itself
    const all = make(3)
    expect(all.view().membersAt(28)).toEqual(['a', 'b', 'host'])
    const abort = new AbortController()
    const start = all.awaitStart(abort.signal)
    expect(await started(start, 700)).toBe(false)
    heard.add('a')
    expect((await all.admit('a', 'before-start')).effectiveStep).toBe(28)
    expect(await started(start, 700)).toBe(false)
    expect(all.startWaitReason()).toBe('resumed from the checkpoint at step 28: 2 of the 3 members it needs (minPeers, this peer included) are back; not back yet: b')
    heard.add('b')
    expect((await all.admit('b', 'before-start')).effectiveStep).toBe(28)
    expect(await started(start, 1_000)).toBe(true)
    expect(all.view().membersAt(28)).toEqual(['a', 'b', 'host'])
    expect(removed).toEqual([])

    // minPeers 2, one back: it starts, and the one not back (crashed for good, cut off, or slower)
    // leaves from the resumed step instead of holding each step to its deadline; back later, it
    // joins the running job
    const two = make(2)
    heard.add('a')
    expect(await started(two.awaitStart(new AbortController().signal), 1_000)).toBe(true)
    expect(two.view().membersAt(28)).toEqual(['a', 'host'])
    expect(removed).toEqual(['b'])
    expect(two.version()).toBeGreaterThan(4)

    // minPeers 3, nobody back yet: it waits (no step runs on members that may be restarting)
    const none = make(3)
    const noneStart = none.awaitStart(new AbortController().signal)
    expect(await started(noneStart, 1_000)).toBe(false)
    expect(removed).toEqual([])
    for (const peer of ['b', 'a']) {
      heard.add(peer)
      expect((await none.admit(peer, 'before-start')).effectiveStep).toBe(28)
    }
    expect(await started(noneStart, 1_000)).toBe(true)
    abort.abort()
  })

  it('a resumed host: a member that re-joined and went away before the start is not back; a new joiner that did leaves', async () => {
    const heard = new Set<string>()
    const removed: string[] = []
    const membership = createJobMembership({
      selfId: 'host', host: true, minPeers: 3, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => 28, phase: () => 'waiting', onRemoved: (peer) => removed.push(peer), recentlyHeard: (peer) => heard.has(peer)
    })
    membership.restore({ version: 4, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'a', joinStep: 0, leaveStep: Infinity }, { peerId: 'b', joinStep: 0, leaveStep: Infinity }] })
    membership.resumeAsHost(28, true)
    const start = membership.awaitStart(new AbortController().signal)
    let started = false
    void start.then(() => { started = true })
    heard.add('a')
    await membership.admit('a', 'before-start')
    // the host looks at its members every 250 ms: 'a' is back
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(membership.startWaitReason()).toMatch(/2 of the 3 members .* not back yet: b$/)
    // 'a' was killed while its reply was held: the session forgets it was heard from
    heard.delete('a')
    expect(membership.withdraw('a', 'test')).toBe(true)
    expect(membership.withdraw('a', 'test')).toBe(false)
    // a new joiner of the resumed job went away too: it leaves from the resumed step
    heard.add('c')
    await membership.admit('c', 'before-start')
    expect(membership.view().membersAt(28)).toEqual(['a', 'b', 'c', 'host'])
    heard.delete('c')
    expect(membership.withdraw('c', 'test')).toBe(true)
    expect(membership.view().membersAt(28)).toEqual(['a', 'b', 'host'])
    expect(removed).toEqual(['c'])
    // 'b' comes back: 2 of 3, not 3 (counting 'a', the job went on with a member that no longer
    // existed and each step waited its deadline for it, ~2 min until evicted)
    heard.add('b')
    await membership.admit('b', 'before-start')
    await new Promise((resolve) => setTimeout(resolve, 700))
    expect(started).toBe(false)
    expect(membership.startWaitReason()).toBe('resumed from the checkpoint at step 28: 2 of the 3 members it needs (minPeers, this peer included) are back; not back yet: a')
    expect(membership.countedAtStart()).toBe(2)
    // the host never withdraws itself
    expect(membership.withdraw('host', 'test')).toBe(false)
    // 'a' restarted and asks again: the job goes on with all three
    heard.add('a')
    await membership.admit('a', 'before-start')
    await start
    expect(membership.view().membersAt(28)).toEqual(['a', 'b', 'host'])

    // a checkpoint that lists only the host and 'a' (the others' leaves recorded first): 'a' back,
    // all it lists are back, and the job waits for a third member to join (status says so)
    const fewer = createJobMembership({
      selfId: 'host', host: true, minPeers: 3, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => 28, phase: () => 'waiting', onRemoved: () => {}, recentlyHeard: (peer) => heard.has(peer)
    })
    fewer.restore({ version: 4, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'a', joinStep: 0, leaveStep: Infinity }, { peerId: 'b', joinStep: 0, leaveStep: 28 }] })
    heard.clear()
    fewer.resumeAsHost(28, true)
    void fewer.awaitStart(new AbortController().signal)
    heard.add('a')
    await fewer.admit('a', 'before-start')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(fewer.startWaitReason()).toBe('resumed from the checkpoint at step 28: 2 of the 3 members it needs (minPeers, this peer included) are back; the checkpoint lists no other: waiting for another member to join (a former member not listed, or a new one)')
    // 'a' killed while held: it leaves from the resumed step (counted, 'b' back would start the job with it)
    heard.delete('a')
    expect(fewer.withdraw('a', 'test')).toBe(true)
    expect(fewer.view().membersAt(28)).toEqual(['host'])
    expect(fewer.startWaitReason()).toBe('resumed from the checkpoint at step 28: 1 of the 3 members it needs (minPeers, this peer included) are back; the checkpoint lists no other: waiting for another member to join (a former member not listed, or a new one)')
    // back, it is a member at the resumed step again
    await fewer.admit('a', 'before-start')
    expect(fewer.view().membersAt(28)).toEqual(['a', 'host'])
    fewer.close()
  })

  it('a member waiting for the start says so when its host has gone silent (stopped before the start, it sent no leave)', () => {
    const heard = new Set(['host'])
    const member = createJobMembership({
      selfId: 'me', host: false, minPeers: 3, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => 0, phase: () => 'waiting', onRemoved: () => {}, recentlyHeard: (peer) => heard.has(peer)
    })
    member.restore({ version: 1, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'me', joinStep: 0, leaveStep: Infinity }] })
    const waiting = 'waiting for the host to start the job: 2 of the 3 members it needs (minPeers, the host included) have joined'
    expect(member.startWaitReason()).toBe(waiting)
    heard.delete('host')
    expect(member.startWaitReason()).toBe(`${waiting}; the host host has not been heard from for a few seconds (stopped, or cut off): this member waits for it to come back (a restarted host resumes the job and asks its members back), or stop it with p2pmld stop`)
    member.close()
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
    const announced: number[] = []
    const membership = createJobMembership({
      selfId: 'host', host: true, minPeers: 3, evictAfterMissedSteps: 1, network: { announceMembership: async (state) => { announced.push(state.version) } },
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
    const before = membership.version()
    expect((await membership.admit('stays', 'later')).effectiveStep).toBe(17)
    expect(membership.view().membersAt(17)).toEqual(['back', 'host', 'stays'])
    // and its admission is announced as a new version, though this view did not change: a member
    // its restarted daemon told that the previous process left dropped it from its own view
    // (test/e2e/coordinator-restart.test.ts) and takes it back from the announcement
    expect(membership.version()).toBe(before + 1)
    expect(announced.at(-1)).toBe(before + 1)
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
    expect(membership.memberLeaving('a', 38)).toBe(false)
    expect(membership.memberLeaving('b', 38)).toBe(false)
    expect(membership.memberLeaving('b', 45)).toBe(false)
    expect(membership.view().membersAt(41)).toEqual(['a', 'b', 'host'])
    expect(removed).toEqual([])
    // a leave of the process that re-joined counts
    expect(membership.memberLeaving('a', 44)).toBe(true)
    expect(membership.view().membersAt(44)).toEqual(['b', 'host'])
    expect(removed).toEqual(['a'])
  })

  it('an async step without an averaging round leaves the miss counts as they are: a member missing three rounds in a row is evicted', async () => {
    let step = 0
    const removed: string[] = []
    const lines: string[] = []
    const sink = new PassThrough()
    sink.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter((l) => l !== '')))
    const membership = createJobMembership({
      selfId: 'host', host: true, minPeers: 1, evictAfterMissedSteps: 3, missUnit: 'averaging rounds', network: { announceMembership: async () => {} },
      log: createLogger('info', {}, { destination: sink }), step: () => step, phase: () => 'training', onRemoved: (peer) => removed.push(peer)
    })
    membership.joinAsHost()
    membership.restore({ version: 1, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'a', joinStep: 0, leaveStep: Infinity }, { peerId: 'b', joinStep: 0, leaveStep: Infinity }] })
    const report = (missing: string[], round: boolean): StepReport => ({
      step, epoch: 0, members: ['a', 'b', 'host'], contributors: ['host'], samples: 32, missing, digest: 'd', fullDigest: round, peerDigests: new Map(),
      loss: 1, waitedMs: 1, stepMs: 1, epochEnded: false, stepInEpoch: step, stepsInEpoch: 100, ...(round ? {} : { missesUncounted: true } as const)
    })
    // averaging every 10 steps; 'b' crashed: it misses every round, the steps between hear from nobody
    for (step = 0; step < 30; step++) {
      const round = step % 10 === 9
      membership.recordMisses(report(round ? ['b'] : [], round))
    }
    expect(removed).toEqual(['b'])
    expect(membership.view().isMemberAt('b', 30)).toBe(false)
    expect(membership.view().isMemberAt('a', 30)).toBe(true)
    // the log names what it counted: rounds, not steps (b missed 3 rounds, and 29 steps)
    await new Promise((resolve) => setImmediate(resolve))
    const evictions = lines.map((l) => JSON.parse(l) as { msg: string, peer?: string, missedSteps?: number }).filter((r) => r.msg.startsWith('evicting'))
    expect(evictions).toEqual([expect.objectContaining({ msg: 'evicting a member that missed too many averaging rounds', peer: 'b', missedSteps: 3 })])
  })

  it('async (changeStep): an eviction and a join take effect after the next averaging round, not at the coordinator\'s step, which members ahead of it already ran', async () => {
    let step = 0
    const membership = createJobMembership({
      selfId: 'host', host: true, minPeers: 1, evictAfterMissedSteps: 3, missUnit: 'averaging rounds', network: { announceMembership: async () => {} },
      log: silentLogger(), step: () => step, phase: () => 'training', onRemoved: () => {}, changeStep: (earliest) => asyncChangeStep(earliest, 10)
    })
    membership.joinAsHost()
    membership.restore({ version: 1, members: [{ peerId: 'host', joinStep: 0, leaveStep: Infinity }, { peerId: 'a', joinStep: 0, leaveStep: Infinity }, { peerId: 'b', joinStep: 0, leaveStep: Infinity }] })
    const report = (missing: string[]): StepReport => ({
      step, epoch: 0, members: ['a', 'b', 'host'], contributors: ['host'], samples: 32, missing, digest: 'd', fullDigest: true, peerDigests: new Map(),
      loss: 1, waitedMs: 1, stepMs: 1, epochEnded: false, stepInEpoch: step, stepsInEpoch: 100
    })
    // 'b' misses the rounds at 9, 19 and 29; the coordinator, after round 29, is at step 30
    for (const round of [9, 19, 29]) {
      step = round + 1
      membership.recordMisses(report(['b']))
    }
    // a member may already be at step 31 or 39: 'b' leaves after the next round (39), at 40
    expect(membership.view().isMemberAt('b', 39)).toBe(true)
    expect(membership.view().isMemberAt('b', 40)).toBe(false)
    // a joiner asking at step 41 joins at 50 (the step after round 49), not 43
    step = 41
    const { effectiveStep } = await membership.admit('c', 'later')
    expect(effectiveStep).toBe(50)
    expect(membership.view().isMemberAt('c', 49)).toBe(false)
    expect(membership.view().isMemberAt('c', 50)).toBe(true)
  })
})

describe('asyncChangeStep', () => {
  it('is the step after the next regular averaging round at or after the earliest step, or that step past 32', () => {
    expect(asyncChangeStep(22, 8)).toBe(24)
    expect(asyncChangeStep(24, 8)).toBe(24)
    expect(asyncChangeStep(25, 8)).toBe(32)
    expect(asyncChangeStep(2, 10)).toBe(10)
    expect(asyncChangeStep(5, 100)).toBe(5)
  })
})
