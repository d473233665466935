/**
 * A joiner hears membership announcements while it fetches its state (a session, no runner yet):
 * the coordinator admitting a second batch meanwhile. Its runner must start with that membership,
 * not only with the one in its own admission reply, or it runs the second batch's first step
 * without their gradients and diverges (seen in test/p2p/joiner-crowd.test.ts under load). An
 * announcement from a peer the runner does not let decide for the job is still not adopted.
 * Leaves heard during the fetch are applied as well: a coordinator that admits a joiner and stops
 * at once left the joiner taking it for the coordinator (a CI run of test/e2e/rejoin.test.ts), and
 * the joiner waits for gradients as long as its coordinator does, not the 30 s of a job's first steps.
 * Two real session cores (real runtime and runner); the transport is a recording stand-in.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { admissionReply } from '../../daemon/peer/admission-reply.js'
import { JoinReplySchema } from '../../protocols/job/job-protocol.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import { createRng } from '../../ml/core/rng.js'
import { createSessionCore, type JobWire, type SessionCore } from '../../daemon/peer/session-core.js'

const job = parseJobConfig({ id: 'early-membership', model: 'mlp', epochs: 1, batchSize: 16, trainSamples: 512, minPeers: 1, aggregation: { rule: 'mean', f: 0 } }, 'test job')

/** sends nothing anywhere; keeps what the core broadcasts */
function recordingWire (): JobWire & { broadcasts: object[] } {
  const broadcasts: object[] = []
  return {
    broadcasts,
    publishGradient: async () => ({ missed: [] }),
    broadcast: async (message) => { broadcasts.push(message) },
    request: async () => await Promise.reject(new Error('no peers in this test')),
    fetchSnapshot: async () => await Promise.reject(new Error('no peers in this test'))
  }
}

const cores: SessionCore[] = []
afterEach(async () => {
  for (const c of cores.splice(0)) {
    await c.stopRunner(false)
    await c.close()
  }
})

async function core (selfId: string, host: boolean): Promise<{ core: SessionCore, wire: ReturnType<typeof recordingWire> }> {
  const c = createSessionCore({ jobId: 'early-membership', config: job, log: silentLogger(), computeThreads: 1, host, selfId })
  cores.push(c)
  await c.startRuntime()
  const wire = recordingWire()
  c.attach(wire)
  return { core: c, wire }
}

describe('membership announced while a joiner has no runner yet', () => {
  it('is adopted from the coordinator when the runner starts, and not from another peer', async () => {
    const host = await core('host', true)
    host.core.startIfOwned()
    const runner = host.core.runner()!
    const first = await runner.admit('joiner-1')
    // what the joiner fetches: the state, with its admission reply's membership
    const snapshot = runner.currentSnapshot()
    const reply = first.membership
    const announced = host.wire.broadcasts.length
    const second = await runner.admit('joiner-2')
    expect(second.membership.version).toBeGreaterThan(reply.version)
    const announcement = host.wire.broadcasts.slice(announced).find((m) => (m as { type?: string }).type === 'membership')
    expect(announcement).toBeDefined()

    const joiner = await core('joiner-1', false)
    // during the fetch: the coordinator's announcement, and a newer one from a stranger
    expect(joiner.core.onAnnouncement('host', announcement)?.adopted).toBe(true)
    const forged = { ...announcement, membership: { ...second.membership, version: second.membership.version + 5, members: [...second.membership.members, { peerId: 'stranger', joinStep: 0 }] } }
    joiner.core.onAnnouncement('stranger', forged)
    joiner.core.startFromSnapshot({ ...snapshot, meta: { ...snapshot.meta, membership: reply } })

    const view = joiner.core.runner()!.membership()
    expect(joiner.core.runner()!.membershipVersion()).toBe(second.membership.version)
    expect(view.isMemberAt('joiner-2', second.effectiveStep)).toBe(true)
    expect(view.isMemberAt('joiner-1', first.effectiveStep)).toBe(true)
    expect(view.toSnapshot().members.map((m) => m.peerId)).not.toContain('stranger')
  })
})

describe('a joiner admitted by a coordinator that stops at once', () => {
  it('applies the leave it heard before its runner started, and waits for gradients as long as the coordinator did', async () => {
    const host = await core('host', true)
    host.core.startIfOwned()
    const runner = host.core.runner()!
    await runner.admit('member')
    // the reply as the joiner parses it off the wire: the coordinator's step deadline goes with it
    const admitted = JoinReplySchema.parse(await admissionReply(runner, 'joiner-1'))
    expect(admitted.deadlineMs).toBe(runner.stepDeadlineMs())
    const snapshot = runner.currentSnapshot()
    // the host leaves from the step it stands at (the joiner's state's step)
    const step = snapshot.step

    const joiner = await core('joiner-1', false)
    // the host stops right after its admission reply: its leave reaches the joiner mid-fetch
    joiner.core.onAnnouncement('host', { v: 1, type: 'leave', jobId: 'early-membership', effectiveStep: step })
    // (a running coordinator's deadline, ~2-4 s here, rather than its start's 30 s warm-up)
    joiner.core.startFromSnapshot({ ...snapshot, meta: { ...snapshot.meta, membership: admitted.membership } }, { warmupDeadlineMs: 2345 })

    const r = joiner.core.runner()!
    expect(r.stepDeadlineMs()).toBe(2345)
    expect(r.membership().membersAt(admitted.effectiveStep)).toEqual(['joiner-1', 'member'])
    // the next member in seniority decides now: its memberships are adopted (they were refused,
    // and the joiner waited out a deadline for the gone host's gradient)
    expect(r.mayDecideForJob('member')).toBe(true)
    expect(r.mayDecideForJob('host')).toBe(false)
  })
})

describe('a joiner whose state is past its admission step', () => {
  it('takes the members\' gradients of the steps before its state as expected refusals, not rejections (a walk logged them as warnings)', async () => {
    const host = await core('host', true)
    host.core.startIfOwned()
    const runner = host.core.runner()!
    const admitted = await runner.admit('joiner-1')
    const snapshot = runner.currentSnapshot()
    // the donor had moved on past the admission step when it served the state
    const stateStep = admitted.effectiveStep + 3
    const joiner = await core('joiner-1', false)
    joiner.core.startFromSnapshot({ ...snapshot, step: stateStep, meta: { ...snapshot.meta, membership: admitted.membership } })
    const codec = host.core.codec
    const count = host.core.parameterCount()
    const gradientFor = (step: number): GradientMessage => ({
      jobId: 'early-membership', step, sender: 'host', codec: codec.id, parameterCount: count,
      digest: new Uint8Array(32), payload: codec.encode(new Float32Array(count), createRng(step))
    })
    // a member's gradient for a step between the admission and the state
    joiner.core.onGradient(gradientFor(stateStep - 1), 'host')
    expect(joiner.core.rejections.counts()).toEqual({})
    expect(joiner.core.rejections.dropped()).toEqual({ stale: 1 })
  })
})
