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
})
