/**
 * A daemon started with --exit-when-done stays up after its job for up to 2 s, so members still
 * agreeing on the final state can ask it; it stops sooner once every other member of the last
 * step announced it finished (SessionCore.othersFinished). A member's own 'finished'
 * announcement is what counts: one from a peer that is not a member does not.
 * Two real session cores (real runtime and runner) wired to each other in memory.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createSessionCore, type JobWire, type SessionCore } from '../../daemon/peer/session-core.js'

const job = parseJobConfig({ id: 'others-finished', model: 'mlp', epochs: 1, batchSize: 16, trainSamples: 128, minPeers: 2, stepDeadlineMs: 2000, aggregation: { rule: 'mean', f: 0 } }, 'test job')

const cores: SessionCore[] = []
afterEach(async () => {
  for (const c of cores.splice(0)) {
    await c.stopRunner(false)
    await c.close()
  }
})

describe('othersFinished', () => {
  it('is true once every other member of the last step announced it finished, and not for a stranger\'s announcement', async () => {
    const byId = new Map<string, SessionCore>()
    /** 'finished' announcements from the member, held back until the test delivers them */
    const held: object[] = []
    const wireFor = (selfId: string): JobWire => ({
      publishGradient: async (message, recipients) => {
        for (const peer of recipients) byId.get(peer)?.onGradient(message, selfId)
        return { missed: [] }
      },
      broadcast: async (message) => {
        const finished = (message as { type?: string, phase?: string }).type === 'membership' && (message as { phase?: string }).phase === 'finished'
        if (selfId === 'member' && finished) {
          held.push(message)
          return
        }
        for (const [id, core] of byId) if (id !== selfId) core.onAnnouncement(selfId, message)
      },
      request: async (peer, request, schema, options) => {
        const r = request as { type?: string, step?: number }
        const core = byId.get(peer)
        if (core === undefined || r.type !== 'digest' || r.step === undefined) throw new Error(`no answer to ${String(r.type)} in this test`)
        return schema.parse(await core.digestFor(r.step, options?.signal, selfId))
      },
      fetchSnapshot: async () => await Promise.reject(new Error('no state transfer in this test'))
    })
    const start = async (selfId: string, host: boolean): Promise<SessionCore> => {
      const core = createSessionCore({ jobId: 'others-finished', config: job, log: silentLogger(), computeThreads: 1, host, selfId })
      cores.push(core)
      byId.set(selfId, core)
      await core.startRuntime()
      core.attach(wireFor(selfId))
      return core
    }

    const host = await start('host', true)
    host.startIfOwned()
    const hostRunner = host.runner()!
    // the member's core exists before it is admitted: gradients sent before its runner starts are kept
    const member = await start('member', false)
    await hostRunner.admit('member')
    member.startFromSnapshot(hostRunner.currentSnapshot())
    const [hostResult, memberResult] = await Promise.all([hostRunner.done(), member.runner()!.done()])
    expect(hostResult?.reason).toBe('epochs')
    expect(memberResult?.digest).toBe(hostResult?.digest)

    // the host heard nothing from the member since: it still waits for it
    expect(member.othersFinished()).toBe(true)
    expect(host.othersFinished()).toBe(false)
    expect(held.length).toBeGreaterThan(0)
    // a stranger saying it finished changes nothing
    host.onAnnouncement('stranger', held[0])
    expect(host.othersFinished()).toBe(false)
    host.onAnnouncement('member', held[0])
    expect(host.othersFinished()).toBe(true)
  }, 60_000)
})
