/**
 * The leaves a session records (the run report's `leaves`, the membership-change counts) are the
 * ones its membership takes: a leave sent by an earlier process of a member that re-joined, or
 * naming this peer, is ignored there (job-membership.ts) and must not be listed as a leave that
 * happened. A real session core and runner, with a wire that goes nowhere.
 */
import { describe, expect, it } from 'vitest'
import { useHostSessionCores } from '../support/host-session-core.js'

const host = useHostSessionCores('announced-leaves')

describe('leaves a session records', () => {
  it('lists a member\'s leave, not one its membership ignores', async () => {
    const core = await host(3)
    await core.runner()!.admit('a')
    // a leave naming this peer: sent by an earlier process with its key
    core.memberLeaving('host', 0)
    expect([...core.announcedLeaves().keys()]).toEqual([])
    expect(core.runner()!.membership().membersAt(0)).toEqual(['a', 'host'])
    // a member's own leave is recorded
    core.memberLeaving('a', 0)
    expect([...core.announcedLeaves().entries()]).toEqual([['a', 0]])
  })
})
