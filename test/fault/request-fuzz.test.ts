/**
 * 10,000 malformed job-protocol and state-sync frames from an outsider's libp2p node against a
 * live peer while its 3-peer job trains: digest queries (far ahead, other job, bad fields),
 * join/leave/membership-shaped requests with bad fields, snapshot requests (bad JSON, bad fields,
 * other job, far-ahead step), reply-shaped frames (snapshot status and data, digest and join
 * replies) sent as requests, random bytes and truncated frames. Each is refused and counted by
 * reason, nothing crashes, and training goes on to the end with identical parameters.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createRng } from '../../ml/core/rng.js'
import { JOB_PROTOCOL } from '../../protocols/job/job-protocol.js'
import { createPeerNode, parseMultiaddr } from '../../protocols/node/index.js'
import { STATE_SYNC_PROTOCOL } from '../../protocols/state-sync/index.js'
import { accuracyOf, startCluster } from './cluster.js'

const job = parseJobConfig({
  id: 'fuzzed-requests',
  model: 'mlp',
  seed: 6,
  epochs: 3,
  batchSize: 32,
  trainSamples: 2048,
  minPeers: 3,
  stepDeadlineMs: 30_000,
  optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 },
  aggregation: { rule: 'trimmed-mean', f: 1 }
})

const delta = (after: Record<string, number>, before: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0))

interface Frame { readonly protocol: string, readonly kind: string, readonly bytes: Uint8Array }

/** a state-sync queue frame: the request waits for a transfer slot */
function isQueueFrame (bytes: Uint8Array): boolean {
  try {
    return typeof (JSON.parse(new TextDecoder().decode(bytes)) as { queued?: unknown }).queued === 'number'
  } catch {
    return false
  }
}

describe('fuzzing a training peer\'s request protocols', () => {
  it('refuses 10,000 malformed job-protocol and state-sync frames by reason and still finishes', async () => {
    const cluster = await startCluster({ peers: 3, job })
    const attacker = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    try {
      await attacker.start()
      const target = cluster.daemons[0]
      const rng = createRng(1234)
      const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
      const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => rng.nextUint32() & 0xff)
      const pick = <T>(items: readonly T[]): T => items[rng.nextInt(items.length)]
      const frames: Frame[] = []
      const add = (protocol: string, kind: string, count: number, make: (i: number) => Uint8Array): void => {
        for (let i = 0; i < count; i++) frames.push({ protocol, kind, bytes: make(i) })
      }
      const jobId = 'fuzzed-requests'
      // job protocol (/p2pmld/job/1.0.0)
      add(JOB_PROTOCOL, 'job random bytes', 1300, () => randomBytes(1 + rng.nextInt(300)))
      add(JOB_PROTOCOL, 'job truncated JSON', 600, () => json({ v: 1, type: 'digest', jobId, step: 3 }).subarray(0, 1 + rng.nextInt(30)))
      add(JOB_PROTOCOL, 'digest far ahead', 800, (i) => json({ v: 1, type: 'digest', jobId, step: 1_000_000 + i }))
      add(JOB_PROTOCOL, 'digest other job', 600, (i) => json({ v: 1, type: 'digest', jobId: `other-${i}`, step: 1 }))
      add(JOB_PROTOCOL, 'digest bad fields', 800, () => json(pick([
        { v: 1, type: 'digest', jobId, step: -1 }, { v: 1, type: 'digest', jobId, step: 1.5 }, { v: 2, type: 'digest', jobId, step: 1 },
        { v: 1, type: 'digest', jobId }, { v: 1, type: 'digest', jobId, step: '1' }, { v: 1, type: 'digest', jobId, step: 1, extra: true }
      ])))
      add(JOB_PROTOCOL, 'membership bad fields', 800, () => json(pick([
        { v: 1, type: 'join', jobId, addrs: 'x' }, { v: 1, type: 'join', jobId, addrs: Array(33).fill('/ip4/1.2.3.4') },
        { v: 1, type: 'leave', jobId, effectiveStep: -3 }, { v: 1, type: 'leave', jobId: '', effectiveStep: 1 },
        { v: 1, type: 'membership', jobId, step: 1, phase: 'training', membership: { version: 9, members: [] } },
        { v: 1, type: 'heartbeat', jobId, step: 1, addrs: [] }, { v: 1, type: 'info', extra: 1 }
      ])))
      add(JOB_PROTOCOL, 'membership other job', 400, (i) => json(pick([
        { v: 1, type: 'join', jobId: `other-${i}`, addrs: [] }, { v: 1, type: 'leave', jobId: `other-${i}`, effectiveStep: 1 }
      ])))
      add(JOB_PROTOCOL, 'reply-shaped', 400, () => json(pick([
        { ok: true, result: { step: 1, digest: 'ab'.repeat(32) } }, { step: 1, digest: 'ab'.repeat(32) },
        { effectiveStep: 3, membership: { version: 1, members: [] } }, { ok: false, error: 'x' }, null, [], 7, 'digest'
      ])))
      // state sync (/p2pmld/state/1.0.0)
      add(STATE_SYNC_PROTOCOL, 'state random bytes', 1300, () => randomBytes(1 + rng.nextInt(300)))
      add(STATE_SYNC_PROTOCOL, 'state truncated JSON', 500, () => json({ jobId, minStep: 2 }).subarray(0, 1 + rng.nextInt(15)))
      add(STATE_SYNC_PROTOCOL, 'snapshot request bad fields', 1000, () => json(pick([
        { jobId: '', minStep: 0 }, { jobId, minStep: -1 }, { jobId, minStep: 2.5 }, { jobId, minStep: '3' }, { minStep: 1 },
        { jobId: 'x'.repeat(300) }, { jobId, minStep: 1, extra: 1 }, {}
      ])))
      add(STATE_SYNC_PROTOCOL, 'snapshot request other job', 600, (i) => json({ jobId: `other-${i}`, minStep: 0 }))
      add(STATE_SYNC_PROTOCOL, 'snapshot request far ahead', 500, (i) => json({ jobId, minStep: 1_000_000 + i }))
      add(STATE_SYNC_PROTOCOL, 'snapshot reply-shaped', 400, () => rng.nextFloat() < 0.5
        ? json(pick([{ ok: true, totalBytes: 100, step: 3 }, { ok: false, reason: 'busy', message: 'x' }]))
        : randomBytes(1024 + rng.nextInt(4096)))
      expect(frames).toHaveLength(10_000)
      for (let i = frames.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1)
        ;[frames[i], frames[j]] = [frames[j], frames[i]]
      }

      while ((target.session()?.runner()?.progress().step ?? 0) < 2) await new Promise((resolve) => setTimeout(resolve, 50))
      const stepAtStart = target.session()!.runner()!.progress().step
      const before = target.rejectionCounts()
      const address = parseMultiaddr(cluster.bootstrap[0])
      let crashesOrHangs = 0
      const failures = new Map<string, number>()
      // one frame per stream, as both protocols read one request per stream; a few at a time
      const sendOne = async (frame: Frame): Promise<void> => {
        let stream: Stream | undefined
        try {
          stream = await attacker.libp2p.dialProtocol(address, frame.protocol, { signal: AbortSignal.timeout(10_000) })
          stream.send(lp.encode.single(frame.bytes))
          // wait for the peer's answer (or its closing the stream)
          const reply = lp.decode(stream, { maxDataLength: 8 * 1024 * 1024 })
          const timer = setTimeout(() => stream?.abort(new Error('no answer within 10 s')), 10_000)
          try {
            // a state request beyond the transfers served at once waits in the queue, told its
            // position ({"queued": n} frames), until it is answered or refused
            for await (const frame of reply) if (!isQueueFrame(frame.subarray())) break
          } finally {
            clearTimeout(timer)
          }
        } catch (error) {
          if ((error as Error).message === 'no answer within 10 s') crashesOrHangs++
          else failures.set((error as Error).name, (failures.get((error as Error).name) ?? 0) + 1)
        } finally {
          // not awaited: the answer is in, and closing waits on the far side's close too
          stream?.close().catch(() => {})
        }
      }
      // a few at a time: more concurrent streams than the peer takes per protocol get reset, and
      // past a burst of resets the connection was closed, losing frames uncounted
      let next = 0
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < frames.length) await sendOne(frames[next++])
      }))

      const counts = delta(target.rejectionCounts(), before)
      const stepAtEnd = target.session()!.runner()!.progress().step
      const total = Object.values(counts).reduce((a, b) => a + b, 0)
      console.log(`request fuzz: ${total} refusals by reason ${JSON.stringify(counts)}; unanswered ${crashesOrHangs}; sender-side errors ${JSON.stringify(Object.fromEntries(failures))}; steps ${stepAtStart} -> ${stepAtEnd} while fuzzing`)
      expect(crashesOrHangs).toBe(0)
      const byKind = (kinds: string[]): number => frames.filter((f) => kinds.includes(f.kind)).length
      // every job-protocol frame refused once, by a reason
      expect((counts['job-bad-json'] ?? 0) + (counts['job-bad-request'] ?? 0) + (counts['job-refused'] ?? 0) + (counts['job-unreadable'] ?? 0))
        .toBe(frames.filter((f) => f.protocol === JOB_PROTOCOL).length)
      expect(counts['job-refused']).toBe(byKind(['digest far ahead', 'digest other job', 'membership other job']))
      expect(counts['job-bad-request']).toBe(byKind(['digest bad fields', 'membership bad fields', 'reply-shaped']))
      // every state-sync frame refused once, by a reason
      expect((counts['state-bad-request'] ?? 0) + (counts['state-unknown-job'] ?? 0) + (counts['state-not-ready'] ?? 0) + (counts['state-busy'] ?? 0) + (counts['state-unreadable'] ?? 0))
        .toBe(frames.filter((f) => f.protocol === STATE_SYNC_PROTOCOL).length)
      // a well-formed request beyond the transfers served at once waits its turn, then is refused for its job or step
      expect((counts['state-unknown-job'] ?? 0) + (counts['state-not-ready'] ?? 0) + (counts['state-busy'] ?? 0)).toBe(byKind(['snapshot request other job', 'snapshot request far ahead']))
      expect(counts['state-bad-request']).toBe(byKind(['state random bytes', 'state truncated JSON', 'snapshot request bad fields', 'snapshot reply-shaped']))
      expect(stepAtEnd).toBeGreaterThan(stepAtStart)

      const results = await cluster.finished()
      for (const peer of results) {
        expect(peer.failure).toBeUndefined()
        expect(peer.result?.reason).toBe('epochs')
        expect(accuracyOf(peer)).toBeGreaterThan(0.75)
        for (const r of peer.reports) expect(r.members).not.toContain(attacker.peerId.toString())
      }
      expect(new Set(results.map((p) => p.result?.digest)).size).toBe(1)
    } finally {
      await attacker.stop()
      await cluster.stop()
    }
  }, 300_000)
})
