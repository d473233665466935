/**
 * 10,000 malformed gradient frames on /p2pmld/gradient/1.0.0 and 300 malformed membership
 * messages on the job's gossip topic, sent from an outsider's libp2p node to a live peer while
 * its 3-peer job trains: every one is rejected with a counted reason, nothing crashes, training
 * finishes with identical parameters.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createRng } from '../../ml/core/rng.js'
import { membershipTopic } from '../../daemon/peer/job-session.js'
import { GRADIENT_PROTOCOL } from '../../protocols/gradient-exchange/index.js'
import { encodeGradientMessage, type GradientMessage } from '../../protocols/messages/index.js'
import { createPeerNode, parseMultiaddr } from '../../protocols/node/index.js'
import { createCodec } from '../../ml/compress/index.js'
import { accuracyOf, startCluster } from './cluster.js'

const job = parseJobConfig({
  id: 'fuzzed',
  model: 'mlp',
  seed: 5,
  epochs: 3,
  batchSize: 32,
  trainSamples: 2048,
  minPeers: 3,
  // every peer is alive: a long deadline keeps a loaded machine's hiccups from dropping gradients
  stepDeadlineMs: 30_000,
  optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 },
  aggregation: { rule: 'trimmed-mean', f: 1 }
})
const PARAMETERS = 784 * 128 + 128 + 128 * 10 + 10

const delta = (after: Record<string, number>, before: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0))

describe('fuzzing a training peer', () => {
  it('rejects 10,000 malformed gradient frames and 300 bad membership messages by reason, and still finishes', async () => {
    const cluster = await startCluster({ peers: 3, job })
    const attacker = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    try {
      await attacker.start()
      const target = cluster.daemons[0]
      const self = attacker.peerId.toString()
      const rng = createRng(99)
      const payloadBytes = createCodec(job.compression).encodedSize(PARAMETERS)
      const valid = (over: Partial<GradientMessage> = {}): Uint8Array => encodeGradientMessage({
        jobId: 'fuzzed', step: 0, sender: self, codec: 'qsgd', parameterCount: PARAMETERS,
        digest: new Uint8Array(32), payload: new Uint8Array(payloadBytes), ...over
      })
      const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => rng.nextUint32() & 0xff)
      const frames: Array<{ kind: string, bytes: Uint8Array }> = []
      const small = valid({ parameterCount: 1, payload: new Uint8Array(0) }) // a header-only template
      for (let i = 0; i < 3590; i++) frames.push({ kind: 'random', bytes: randomBytes(rng.nextInt(300)) })
      for (let i = 0; i < 1500; i++) {
        const whole = i % 2 === 0 ? small : valid({ step: 3_000_000 + i })
        frames.push({ kind: 'truncated', bytes: whole.subarray(0, rng.nextInt(Math.min(whole.length, 400))) })
      }
      for (let i = 0; i < 1000; i++) {
        const b = small.slice()
        b[4] = 2 + rng.nextInt(254)
        frames.push({ kind: 'version', bytes: b })
      }
      for (let i = 0; i < 1000; i++) {
        const b = small.slice()
        const view = new DataView(b.buffer)
        if (i % 2 === 0) view.setUint32(20, 2 ** 28 + 1 + rng.nextInt(1000))
        else view.setUint32(24, 0xffffffff - rng.nextInt(1000))
        frames.push({ kind: 'huge-length', bytes: b })
      }
      for (let i = 0; i < 1000; i++) frames.push({ kind: 'job-id', bytes: valid({ jobId: `other-${i}`, parameterCount: PARAMETERS, payload: new Uint8Array(0) }) })
      for (let i = 0; i < 1000; i++) frames.push({ kind: 'count', bytes: valid({ parameterCount: PARAMETERS + 1 + i, payload: new Uint8Array(0) }) })
      // a whole, valid message naming another member as its sender
      for (let i = 0; i < 200; i++) frames.push({ kind: 'sender', bytes: valid({ sender: cluster.peerIds[1], step: 4_000_000 + i }) })
      for (let i = 0; i < 300; i++) {
        const payload = new Uint8Array(payloadBytes)
        new DataView(payload.buffer).setFloat32(4 * rng.nextInt(10), [NaN, Infinity, -Infinity][i % 3], true)
        frames.push({ kind: 'non-finite', bytes: valid({ step: 1_000_000 + i, payload }) })
      }
      for (let i = 0; i < 400; i++) {
        // a well-formed gradient from an outsider for a step far ahead: refused as ahead, then as a duplicate
        const bytes = valid({ step: 2_000_000 + (i >> 1) })
        frames.push({ kind: i % 2 === 0 ? 'far-step' : 'duplicate', bytes })
      }
      // shuffle, keeping each far-step before its duplicate
      for (let i = frames.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1)
        ;[frames[i], frames[j]] = [frames[j], frames[i]]
      }
      for (let i = 0; i < frames.length; i++) {
        if (frames[i].kind === 'duplicate') {
          const step = new DataView(frames[i].bytes.buffer, frames[i].bytes.byteOffset).getUint32(12)
          const first = frames.findIndex((f) => f.kind === 'far-step' && new DataView(f.bytes.buffer, f.bytes.byteOffset).getUint32(12) === step)
          if (first > i) [frames[i], frames[first]] = [frames[first], frames[i]]
        }
      }
      expect(frames).toHaveLength(9990)

      // fuzz while the job trains
      while ((target.session()?.runner()?.progress().step ?? 0) < 2) await new Promise((resolve) => setTimeout(resolve, 50))
      const stepAtStart = target.session()!.runner()!.progress().step
      const before = target.session()!.rejectionCounts()
      const address = parseMultiaddr(cluster.bootstrap[0])
      const send = async (stream: Stream, bytes: Uint8Array, maxDataLength = 64 * 1024 * 1024): Promise<void> => {
        if (!stream.send(lp.encode.single(bytes, { maxDataLength }).subarray())) await stream.onDrain()
      }
      const rejectedSoFar = (): number => Object.values(delta(target.session()!.rejectionCounts(), before)).reduce((a, b) => a + b, 0)
      const stream = await attacker.libp2p.dialProtocol(address, GRADIENT_PROTOCOL)
      for (let i = 0; i < frames.length; i++) {
        await send(stream, frames[i].bytes)
        // pace: a reader that falls 4 MiB behind gets its stream reset by yamux, losing frames uncounted
        if (i % 100 === 99) {
          const until = Date.now() + 10_000
          while (rejectedSoFar() < i + 1 - 20 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
        }
      }
      await stream.close()
      // 10 frames whose length prefix exceeds the peer's limit: each costs the sender its stream
      for (let i = 0; i < 10; i++) {
        const s = await attacker.libp2p.dialProtocol(address, GRADIENT_PROTOCOL)
        // the peer aborts the stream once it has read the length prefix
        await send(s, new Uint8Array(8 * 1024 * 1024)).catch(() => {})
        await s.close().catch(() => {})
      }

      // the membership topic
      const topic = membershipTopic('fuzzed')
      attacker.pubsub.subscribe(topic)
      while (!attacker.pubsub.getSubscribers(topic).some((p) => p.toString() === target.peerId)) await new Promise((resolve) => setTimeout(resolve, 100))
      const gossip: Uint8Array[] = []
      for (let i = 0; i < 100; i++) gossip.push(randomBytes(1 + rng.nextInt(200)))
      for (let i = 0; i < 100; i++) gossip.push(new TextEncoder().encode(JSON.stringify({ v: 1, type: 'membership', jobId: 'fuzzed', membership: { version: 'x', members: i } })))
      for (let i = 0; i < 100; i++) gossip.push(new TextEncoder().encode(JSON.stringify({ v: 1, type: 'heartbeat', jobId: `other-${i}`, step: 1, addrs: [] })))
      for (const g of gossip) await attacker.pubsub.publish(topic, g)

      const expectedTotal = 10_000 + 300
      const deadline = Date.now() + 20_000
      let counts = delta(target.session()!.rejectionCounts(), before)
      while (Object.values(counts).reduce((a, b) => a + b, 0) < expectedTotal && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        counts = delta(target.session()!.rejectionCounts(), before)
      }
      const stepAtEnd = target.session()!.runner()!.progress().step
      console.log(`fuzz: rejections by reason ${JSON.stringify(counts)} (steps ${stepAtStart} -> ${stepAtEnd} while fuzzing)`)
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(expectedTotal)
      expect(counts['sender-mismatch']).toBe(200)
      expect(counts['job-id']).toBe(1000)
      expect(counts['parameter-count']).toBe(1000)
      expect(counts.version).toBe(1000)
      expect(counts.payload).toBe(300)
      expect(counts.ahead).toBe(200)
      expect(counts.duplicate).toBe(200)
      expect(counts['too-large']).toBe(1010)
      expect((counts['bad-json'] ?? 0) + (counts['bad-membership'] ?? 0) + (counts.job ?? 0)).toBe(300)

      const results = await cluster.finished()
      expect(target.session()!.networkCounters()).toBeDefined()
      for (const peer of results) {
        expect(peer.result?.reason).toBe('epochs')
        expect(accuracyOf(peer)).toBeGreaterThan(0.75)
        for (const r of peer.reports) expect(r.members).not.toContain(self)
      }
      expect(new Set(results.map((p) => p.result?.digest)).size).toBe(1)
    } finally {
      await attacker.stop()
      await cluster.stop()
    }
  }, 120_000)
})
