/**
 * The leaves a session records (the run report's `leaves`, the membership-change counts) are the
 * ones its membership takes: a leave sent by an earlier process of a member that re-joined, or
 * naming this peer, is ignored there (job-membership.ts) and must not be listed as a leave that
 * happened. A real session core and runner, with a wire that goes nowhere.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createSessionCore, type JobWire, type SessionCore } from '../../daemon/peer/session-core.js'

const cores: SessionCore[] = []
afterEach(async () => {
  for (const c of cores.splice(0)) {
    await c.stopRunner(false)
    await c.close()
  }
})

const wire: JobWire = {
  publishGradient: async () => ({ missed: [] }),
  broadcast: async () => {},
  request: async () => await Promise.reject(new Error('no requests in this test')),
  fetchSnapshot: async () => await Promise.reject(new Error('no state transfer in this test'))
}

describe('leaves a session records', () => {
  it('lists a member\'s leave, not one its membership ignores', async () => {
    const config = parseJobConfig({ id: 'announced-leaves', model: 'mlp', epochs: 1, batchSize: 16, trainSamples: 128, minPeers: 3, stepDeadlineMs: 60_000, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    const core = createSessionCore({ jobId: 'announced-leaves', config, log: silentLogger(), computeThreads: 1, host: true, selfId: 'host' })
    cores.push(core)
    await core.startRuntime()
    core.attach(wire)
    core.startIfOwned()
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
