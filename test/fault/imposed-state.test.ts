/**
 * No single peer imposes its state. An attacker joins a 3-peer job as a member (through the real
 * join protocol) and lies about its state everywhere it can: for every step the others are at it
 * sends, instead of its gradient, one for the step 1000 ahead with a made-up digest; it answers
 * digest questions with that digest at any step, and serves a poisoned snapshot (uniform
 * parameters, 1000 steps ahead) whose digest is the made-up one. The job needs every member's
 * gradient (quorum 1), so each step runs short while the attacker is a member: before, a peer short
 * of gradients that saw one member ahead fetched that member's state and adopted it. Now a peer
 * counts itself behind only when f+1 members are ahead and adopts only a state f+1 members vouch
 * for (the refusals of a fetched state are in test/daemon/state-repair.test.ts): the honest peers
 * wait, count the attacker's missed rounds, evict it, and finish with equal digests and normal
 * accuracy.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { parameterDigest } from '../../daemon/training/training-state.js'
import { createCodec } from '../../ml/compress/index.js'
import { createRng } from '../../ml/core/rng.js'
import { createGradientExchange } from '../../protocols/gradient-exchange/index.js'
import { JOB_PROTOCOL, JobInfoSchema, JobRequestSchema, JoinReplySchema, type JobInfo, type JoinReply } from '../../protocols/job/job-protocol.js'
import { createPeerNode, parseMultiaddr } from '../../protocols/node/index.js'
import { handleJsonRequests, requestJson } from '../../protocols/request/json-request.js'
import { fetchSnapshot, registerStateSyncServer } from '../../protocols/state-sync/index.js'
import { accuracyOf, startCluster } from './cluster.js'

const PARAMETERS = 784 * 128 + 128 + 128 * 10 + 10
const AHEAD = 1000

const job = parseJobConfig({
  id: 'imposed',
  model: 'mlp',
  seed: 2,
  epochs: 3,
  batchSize: 64,
  trainSamples: 2048,
  minPeers: 3,
  stepDeadlineMs: 400,
  quorum: 1,
  optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 },
  aggregation: { rule: 'trimmed-mean', f: 1 }
})

describe('a single peer cannot impose its state', () => {
  it('a member announcing a far-ahead step with an invented digest and a poisoned snapshot is not adopted', async () => {
    const cluster = await startCluster({ peers: 3, job })
    const attacker = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [...cluster.bootstrap] })
    const codec = createCodec(job.compression)
    const exchange = createGradientExchange({
      mode: 'stream', node: attacker, jobId: 'imposed', logger: silentLogger(),
      expect: { parameterCount: PARAMETERS, codec: codec.id, payloadBytes: codec.encodedSize(PARAMETERS) }
    })
    let served = 0
    let digestQuestions = 0
    try {
      await attacker.start()
      const self = attacker.peerId.toString()
      const bootstrap = parseMultiaddr(cluster.bootstrap[0])
      while ((cluster.daemons[0].session()?.runner()?.progress().step ?? 0) < 2) await new Promise((resolve) => setTimeout(resolve, 50))

      // join as any peer would, and take the real state as the template of the poisoned one
      const join = async (): Promise<[JobInfo, JoinReply]> => {
        // the coordinator can change hands for a moment (a member suspected of a missed step): ask again
        for (let attempt = 0; ; attempt++) {
          const info = await requestJson(attacker.libp2p, bootstrap, JOB_PROTOCOL, { v: 1, type: 'info' }, JobInfoSchema)
          try {
            return [info, await requestJson(attacker.libp2p, peerIdFromString(info.coordinator.peerId), JOB_PROTOCOL,
              { v: 1, type: 'join', jobId: 'imposed', addrs: attacker.dialableAddrs() }, JoinReplySchema)]
          } catch (error) {
            if (attempt === 10) throw error
            await new Promise((resolve) => setTimeout(resolve, 200))
          }
        }
      }
      const [info, reply] = await join()
      for (const [peer, addrs] of Object.entries(reply.addresses ?? {})) {
        if (peer !== self) await attacker.libp2p.peerStore.merge(peerIdFromString(peer), { multiaddrs: addrs.map((a) => parseMultiaddr(a)) })
      }
      const real = await fetchSnapshot(attacker.libp2p, peerIdFromString(info.coordinator.peerId), { jobId: 'imposed', minStep: reply.effectiveStep })
      const poisoned = new Float32Array(real.params.length).fill(0.37)
      const lie = parameterDigest(poisoned)
      const lieBytes = Buffer.from(lie, 'hex')
      let newest = real.step

      await registerStateSyncServer(attacker.libp2p, {
        getSnapshot: async () => {
          served++
          return { ...real, step: newest + AHEAD, params: poisoned }
        }
      })
      await handleJsonRequests(attacker.libp2p, JOB_PROTOCOL, JobRequestSchema, async (request) => {
        if (request.type !== 'digest') throw new Error('not answering that')
        digestQuestions++
        return { step: request.step, digest: lie }
      })

      // for every step the others are at: a gradient for the step far ahead, with the invented digest
      await exchange.start()
      const zeros = codec.encode(new Float32Array(PARAMETERS), createRng(1))
      const sentSteps = new Set<number>()
      const members = cluster.peerIds
      exchange.onGradient((message) => {
        newest = Math.max(newest, message.step)
        if (sentSteps.has(message.step)) return
        sentSteps.add(message.step)
        const base = { jobId: 'imposed', sender: self, epoch: message.epoch, codec: codec.id, parameterCount: PARAMETERS, digest: lieBytes, payload: zeros }
        void exchange.publish({ ...base, step: message.step + AHEAD }, members).catch(() => {})
      })

      const results = await cluster.finished()
      const asMember = results.map((p) => p.reports.filter((r) => r.members.includes(self)).length)
      console.log(`imposed state: the attacker was a member at ${asMember.join('/')} steps of the honest peers; its poisoned snapshot was fetched ${served} times, ` +
        `it answered ${digestQuestions} digest questions; rejections ${JSON.stringify(results.map((p) => p.rejections))}; accuracy ${results.map((p) => p.result?.test.accuracy).join('/')}`)
      // the attack was live: the attacker was admitted (a member at some honest peer's steps; an
      // eviction that lands at its admission step leaves it off a peer's step reports, seen as
      // 1/0/1 once), and every honest peer got its far-ahead gradients (refused as outside its
      // window, but seen ahead) while it ran short
      expect(Math.max(...asMember)).toBeGreaterThan(0)
      for (const peer of results) expect(peer.rejections.ahead ?? 0).toBeGreaterThan(0)
      // and nobody took it
      for (const peer of results) {
        expect(peer.failure).toBeUndefined()
        expect(peer.result?.reason).toBe('epochs')
        expect(peer.result?.step).toBeLessThan(AHEAD)
        expect(peer.result?.digest).not.toBe(lie)
        expect(accuracyOf(peer)).toBeGreaterThan(0.85)
      }
      expect(new Set(results.map((p) => p.result?.digest)).size).toBe(1)
    } finally {
      await exchange.stop().catch(() => {})
      await attacker.stop()
      await cluster.stop()
    }
  }, 120_000)
})
