/** A job session's membership messages: checked, noted, and applied only from a peer that may decide for the job. */
import { describe, expect, it } from 'vitest'
import type { ControlDecision, MembershipState } from '../../protocols/job/job-protocol.js'
import type { JobRunner } from '../../daemon/job/job-runner.js'
import { createAnnouncementHandler } from '../../daemon/peer/announcement-handler.js'
import { createEarlyInbox } from '../../daemon/peer/early-inbox.js'
import type { PeerSighting } from '../../daemon/peer/job-session.js'
import { createRejectionLog } from '../../daemon/peer/rejection-log.js'
import { silentLogger } from '../../daemon/logger.js'

const membership = (version: number): MembershipState => ({ version, members: [{ peerId: 'coord', joinStep: 0, leaveStep: null }, { peerId: 'other', joinStep: 0, leaveStep: null }] })

describe('announcement handler', () => {
  it('refuses bad and foreign messages, keeps memberships before a runner, adopts only from the coordinator', () => {
    const rejections = createRejectionLog(silentLogger())
    const sightings = new Map<string, PeerSighting>()
    const early = createEarlyInbox()
    const finishedPeers = new Set<string>()
    const leaves = new Map<string, number>()
    /** the newer memberships refused, for membership-pull.ts to ask the coordinator */
    const refused: string[] = []
    let runner: JobRunner | undefined
    let stopping = false
    const handle = createAnnouncementHandler({
      jobId: 'j', rejections, sightings, early, finishedPeers, runner: () => runner, stopping: () => stopping,
      noteLeave: (from, step) => leaves.set(from, step), announcedLeave: (from) => leaves.has(from),
      refusedNewer: (from, version) => refused.push(`${from}@${version}`)
    })

    expect(handle('x', { v: 1, type: 'membership', jobId: 'j' })).toBeUndefined()
    expect(handle('x', { v: 1, type: 'heartbeat', jobId: 'other-job', step: 0, addrs: [] })).toBeUndefined()
    expect(rejections.counts()).toEqual({ 'bad-membership': 1, job: 1 })
    expect(sightings.size).toBe(0)

    // no runner yet (a joiner fetching its state): kept for the runner, and the sender was seen
    const kept = handle('coord', { v: 1, type: 'membership', jobId: 'j', step: 3, phase: 'training', membership: membership(2) })
    expect(kept?.adopted).toBe(true)
    expect(sightings.get('coord')?.lastSeen).toBeGreaterThan(0)
    const adopted: MembershipState[] = []
    const decisions: ControlDecision[] = []
    let version = 1
    runner = {
      mayDecideForJob: (from: string) => from === 'coord',
      adoptMembership: (m: MembershipState) => { adopted.push(m); version = m.version },
      membershipVersion: () => version,
      control: () => ({ adopt: (d: ControlDecision) => decisions.push(d) })
    } as unknown as JobRunner
    early.adoptMemberships(runner)
    expect(adopted.map((m) => m.version)).toEqual([2])

    // a newer membership from a member that does not coordinate: counted, not adopted; expected once it announced its leave
    expect(handle('other', { v: 1, type: 'membership', jobId: 'j', step: 4, phase: 'training', membership: membership(5) })?.adopted).toBe(false)
    expect(handle('other', { v: 1, type: 'leave', jobId: 'j', effectiveStep: 6 })?.adopted).toBe(false)
    expect(leaves.get('other')).toBe(6)
    handle('other', { v: 1, type: 'membership', jobId: 'j', step: 4, phase: 'finished', membership: membership(5) })
    expect(finishedPeers.has('other')).toBe(true)
    stopping = true
    handle('third', { v: 1, type: 'membership', jobId: 'j', step: 4, phase: 'training', membership: membership(6) })
    expect(rejections.counts()['membership-not-coordinator']).toBe(1)
    expect(rejections.dropped()).toEqual({ 'membership-not-coordinator': 2 })
    // the coordinator is asked for its membership on a refusal, not while this peer stops
    expect(refused).toEqual(['other@5', 'other@5'])
    expect(adopted.map((m) => m.version)).toEqual([2])

    // a pause decided by anyone but the coordinator is refused (one member could pause the job for good)
    handle('other', { v: 1, type: 'control', jobId: 'j', decision: { seq: 1, action: 'pause', step: 7 } })
    expect(rejections.counts()['control-not-coordinator']).toBe(1)
    expect(decisions).toEqual([])
    expect(handle('coord', { v: 1, type: 'control', jobId: 'j', decision: { seq: 1, action: 'pause', step: 7 } })).toBeDefined()
    expect(decisions).toEqual([{ seq: 1, action: 'pause', step: 7 }])
    expect(handle('coord', { v: 1, type: 'membership', jobId: 'j', step: 8, phase: 'training', membership: membership(7) })?.adopted).toBe(true)
    expect(version).toBe(7)
  })
})
