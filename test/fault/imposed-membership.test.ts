/**
 * No single member imposes a membership, or a pause. A member (the least senior of four, not the
 * coordinator) announces on the membership topic, as only the coordinator does, a membership
 * newer than everyone's in which the three others leave at the next step and a peer of its own
 * joins. Before, every member adopted an announcement from any member whose version was higher:
 * the three honest members dropped out of their own job. Now a member adopts a membership only
 * from the coordinator as it sees it (or a live member more senior than that one): the others
 * refuse it, say so, and the job finishes with all four on one digest. The same member also
 * announces a pause decision, as only the coordinator does (any member could pause the job for
 * good that way): refused too.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { membershipTopic } from '../../daemon/peer/job-session.js'
import { startCluster } from './cluster.js'

const job = parseJobConfig({
  id: 'imposed-membership', model: 'mlp', seed: 9, epochs: 1, batchSize: 32, trainSamples: 4096,
  stepDeadlineMs: 2000, optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 },
  aggregation: { rule: 'trimmed-mean', f: 1 }, earlyStopping: { patience: 0 }
})

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

describe('a member announcing a membership or a pause of its own', () => {
  it('is not adopted by the others: they stay members, never pause, and finish on one digest', async () => {
    const cluster = await startCluster({ peers: 4, job })
    try {
      const [host, , , attacker] = cluster.daemons
      const attackerId = cluster.peerIds[3]
      if (attackerId === undefined) throw new Error('four peers expected')
      const stepOf = (i: number): number => cluster.daemons[i].session()?.runner()?.progress().step ?? 0
      while (stepOf(0) < 3) await sleep(20)
      const runner = host.session()!.runner()!
      expect(runner.membership().coordinatorAt(runner.progress().step)).toBe(cluster.peerIds[0])
      const step = Math.max(...[0, 1, 2, 3].map(stepOf))
      const version = runner.membershipVersion() + 10
      const sybil = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
      const forged = {
        v: 1,
        type: 'membership',
        jobId: 'imposed-membership',
        step,
        phase: 'training',
        membership: {
          version,
          members: [
            ...cluster.peerIds.slice(0, 3).map((peerId) => ({ peerId, joinStep: 0, leaveStep: step + 1 })),
            { peerId: attackerId, joinStep: 0, leaveStep: null },
            { peerId: sybil, joinStep: step + 1, leaveStep: null }
          ]
        }
      }
      const topic = membershipTopic('imposed-membership')
      const pubsub = attacker.node().libp2p.services.pubsub
      const pause = { v: 1, type: 'control', jobId: 'imposed-membership', decision: { seq: 99, action: 'pause', step: step + 1 } }
      for (let i = 0; i < 3; i++) {
        await pubsub.publish(topic, new TextEncoder().encode(JSON.stringify(forged)))
        await pubsub.publish(topic, new TextEncoder().encode(JSON.stringify(pause)))
        await sleep(300)
      }
      const peers = await cluster.finished()
      for (const p of peers) expect(p.result, p.name).toBeDefined()
      expect(new Set(peers.map((p) => p.result?.digest)).size).toBe(1)
      for (const p of peers.slice(0, 3)) {
        // refused and counted, never adopted: all four stayed members to the end, no sybil
        expect(p.rejections['membership-not-coordinator'], p.name).toBeGreaterThanOrEqual(1)
        expect(p.rejections['control-not-coordinator'], p.name).toBeGreaterThanOrEqual(1)
        expect(cluster.daemons[peers.indexOf(p)].session()?.runner()?.control().latest(), p.name).toBeUndefined()
        const last = p.reports[p.reports.length - 1]
        expect(last.members, p.name).toEqual([...cluster.peerIds].sort())
        expect(cluster.daemons[peers.indexOf(p)].session()?.runner()?.membershipVersion(), p.name).toBeLessThan(version)
      }
    } finally {
      await cluster.stop()
    }
  }, 120_000)
})
