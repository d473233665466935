/**
 * Four real libp2p nodes on 127.0.0.1, bootstrapping from the first, meshed by membership
 * heartbeats; gradients exchanged in both modes.
 */
import * as lp from 'it-length-prefixed'
import { peerIdFromString } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createQsgdCodec, createRawCodec } from '../../ml/compress/index.js'
import { createRng } from '../../ml/core/rng.js'
import {
  createFaultInjector, createGradientExchange, gradientTopic, GRADIENT_PROTOCOL, type ExchangeMode, type GradientExchange
} from '../../protocols/gradient-exchange/index.js'
import { createMembershipTopic, type MembershipTopic } from '../../protocols/membership-topic.js'
import { encodeGradientMessage, parameterDigest, type GradientMessage } from '../../protocols/messages/index.js'
import { dialRefused, type PeerNode } from '../../protocols/node/index.js'
import { captureLogs, newNode, startBootstrappedNodes, stopAll, waitFor } from './peer-helpers.js'

const JOB = 'job-mesh'
const PARAMS = 61_706 // lenet5
const STEPS = 6
const qsgd = createQsgdCodec({ bits: 8, bucketSize: 512 })
const PAYLOAD_BYTES = qsgd.encodedSize(PARAMS)

let nodes: PeerNode[] = []
let members: MembershipTopic[] = []
const heard = new Map<string, Set<string>>()
const ids = (): string[] => nodes.map((n) => n.peerId.toString())
const others = (i: number): string[] => ids().filter((_, j) => j !== i)

function gradientFor (sender: string, step: number, count = PARAMS, codec: 'qsgd' | 'none' = 'qsgd'): GradientMessage {
  const rng = createRng(step * 7919 + sender.charCodeAt(sender.length - 1))
  const gradient = new Float32Array(count)
  for (let i = 0; i < count; i++) gradient[i] = rng.nextNormal() * 0.01
  const payload = codec === 'qsgd' ? qsgd.encode(gradient, rng) : createRawCodec().encode(gradient, rng)
  return { jobId: JOB, step, epoch: 0, sender, codec, parameterCount: count, digest: parameterDigest(new Float32Array([step])), payload }
}

beforeAll(async () => {
  nodes = await startBootstrappedNodes(4)
  members = nodes.map((node) => {
    const self = node.peerId.toString()
    heard.set(self, new Set())
    const topic = createMembershipTopic({
      node,
      jobId: JOB,
      heartbeat: {
        intervalMs: 150,
        build: () => ({ type: 'heartbeat', jobId: JOB, peerId: self, addrs: node.dialableAddrs(), step: 0, digest: '00'.repeat(32), state: 'training' })
      }
    })
    topic.onMessage((msg, from) => { heard.get(self)?.add(from) })
    return topic
  })
  for (const m of members) await m.start()
  await waitFor(() => nodes.every((n, i) => others(i).every((p) => n.connectedPeers().includes(p))), 'a full mesh')
})

afterAll(async () => {
  await stopAll(members)
  await stopAll(nodes)
})

describe('mesh', () => {
  it('4 nodes bootstrapping from the first form a full mesh and see each other subscribed', async () => {
    for (let i = 0; i < 4; i++) {
      expect(nodes[i].connectedPeers().sort()).toEqual(others(i).sort())
    }
    await waitFor(() => members.every((m, i) => m.subscribers().length === 3 && others(i).every((p) => heard.get(ids()[i])?.has(p))), 'heartbeats from every member')
    for (let i = 0; i < 4; i++) {
      expect(members[i].subscribers().sort()).toEqual(others(i).sort())
      expect([...(heard.get(ids()[i]) ?? [])].sort()).toEqual(others(i).sort())
      expect(members[i].stats().rejected['sender-mismatch']).toBe(0)
    }
  })

  it('rejects membership messages that speak for another peer or another job', async () => {
    const forger = nodes[1]
    const base = { v: 1, type: 'heartbeat', jobId: JOB, peerId: ids()[1], addrs: [], step: 0, digest: '00'.repeat(32), state: 'training' }
    const raw = (o: object): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(o)))
    const topic = `/p2pmld/job/${JOB}/membership/1.0.0`
    await forger.pubsub.publish(topic, raw({ ...base, peerId: ids()[2] }))
    await forger.pubsub.publish(topic, raw({ ...base, jobId: 'other-job' }))
    await forger.pubsub.publish(topic, raw({ ...base, step: 'seven' }))
    await waitFor(() => members[0].stats().rejected['sender-mismatch'] === 1 && members[0].stats().rejected['job-id'] === 1 && members[0].stats().rejected.schema === 1, 'the forged membership messages rejected')
    // heartbeats keep flowing
    const before = members[0].stats().received
    await waitFor(() => members[0].stats().received > before + 3, 'more heartbeats')
  })
})

async function startExchanges (mode: ExchangeMode, opts: { relay?: boolean, expect?: { parameterCount?: number, codec?: 'qsgd' | 'none', payloadBytes?: number }, logger?: ReturnType<typeof captureLogs>['logger'] } = {}): Promise<GradientExchange[]> {
  const exchanges = nodes.map((node) => mode === 'gossip'
    ? createGradientExchange({ mode, node, jobId: JOB, expect: opts.expect, logger: opts.logger, relay: opts.relay })
    : createGradientExchange({ mode, node, jobId: JOB, expect: opts.expect, logger: opts.logger }))
  for (const x of exchanges) await x.start()
  if (mode === 'gossip') {
    await waitFor(() => nodes.every((n) => n.pubsub.getSubscribers(gradientTopic(JOB)).length === 3), 'gradient topic subscribers')
  }
  return exchanges
}

type Arrival = { receiver: number, sender: string, step: number, payloadHex: string }

function collect (exchanges: GradientExchange[]): Arrival[] {
  const arrivals: Arrival[] = []
  exchanges.forEach((x, receiver) => x.onGradient((msg, from) => {
    expect(from).toBe(msg.sender)
    arrivals.push({ receiver, sender: from, step: msg.step, payloadHex: Buffer.from(msg.payload).toString('hex').slice(0, 64) + msg.payload.length })
  }))
  return arrivals
}

async function expectExactlyOnce (arrivals: Arrival[], sent: Map<string, GradientMessage>, expected: number): Promise<void> {
  await waitFor(() => arrivals.length >= expected, `${expected} gradient arrivals (have ${arrivals.length})`, 30_000)
  await new Promise((resolve) => setTimeout(resolve, 300)) // would-be duplicates get a chance to show up
  expect(arrivals).toHaveLength(expected)
  const keys = new Set(arrivals.map((a) => `${a.receiver}/${a.sender}/${a.step}`))
  expect(keys.size).toBe(expected)
  for (const a of arrivals) {
    expect(ids()[a.receiver]).not.toBe(a.sender)
    const original = sent.get(`${a.sender}/${a.step}`)
    expect(original).toBeDefined()
    expect(a.payloadHex).toBe(Buffer.from(original!.payload).toString('hex').slice(0, 64) + original!.payload.length)
  }
}

const variants = [
  { name: 'gossip (relayed)', mode: 'gossip' as const, relay: true },
  { name: 'gossip (sender flood only)', mode: 'gossip' as const, relay: false },
  { name: 'stream', mode: 'stream' as const, relay: undefined }
]
for (const { name, mode, relay } of variants) {
  describe(`${name} exchange`, () => {
    it(`delivers every gradient of steps 0..${STEPS - 1} to every other peer exactly once`, async () => {
      const exchanges = await startExchanges(mode, { relay, expect: { parameterCount: PARAMS, codec: 'qsgd', payloadBytes: PAYLOAD_BYTES } })
      try {
        const arrivals = collect(exchanges)
        const sent = new Map<string, GradientMessage>()
        for (let step = 0; step < STEPS; step++) {
          const reports = await Promise.all(exchanges.map(async (x, i) => {
            const msg = gradientFor(ids()[i], step)
            sent.set(`${msg.sender}/${step}`, msg)
            return await x.publish(msg, others(i))
          }))
          for (const [i, r] of reports.entries()) {
            expect(r.missed).toEqual([])
            expect(r.reached.sort()).toEqual(others(i).sort())
          }
        }
        await expectExactlyOnce(arrivals, sent, 4 * 3 * STEPS)
        for (const x of exchanges) {
          // by reason, so a failure says which check refused what
          expect(Object.entries(x.stats().rejected).filter(([, count]) => count > 0)).toEqual([])
          expect(x.stats().delivered).toBe(3 * STEPS)
        }
      } finally {
        await stopAll(exchanges)
      }
    })

    it('carries a 6 MiB gradient (above gossipsub\'s 4 MiB limit) to every peer', async () => {
      const count = 1_600_000 // fp32: 6.1 MiB of payload
      const exchanges = await startExchanges(mode, { relay, expect: { parameterCount: count, codec: 'none' } })
      try {
        const arrivals = collect(exchanges)
        // one sender keeps this fast on a 2-core machine; steps 0..N above cover every pair
        const msg = gradientFor(ids()[3], 0, count, 'none')
        const report = await exchanges[3].publish(msg, others(3))
        expect(report.bytes).toBeGreaterThan(6 * 1024 * 1024)
        expect(report.missed).toEqual([])
        expect(report.parts).toBe(mode === 'gossip' ? 7 : 3)
        await expectExactlyOnce(arrivals, new Map([[`${msg.sender}/0`, msg]]), 3)
      } finally {
        await stopAll(exchanges)
      }
    })

    it('rejects malformed, wrong-job, truncated, wrong-count and forged messages by reason and keeps working', async () => {
      const { logger, records } = captureLogs()
      const exchanges = await startExchanges(mode, { relay, expect: { parameterCount: PARAMS, codec: 'qsgd', payloadBytes: PAYLOAD_BYTES }, logger })
      try {
        const arrivals = collect(exchanges)
        // a handler that throws must not stop delivery to the others
        exchanges[0].onGradient(() => { throw new Error('handler bug') })
        const attacker = nodes[1]
        const victim = nodes[0]
        const me = attacker.peerId.toString()
        const good = encodeGradientMessage(gradientFor(me, 100))
        const bad: Array<[string, Uint8Array]> = [
          ['magic', new Uint8Array(300).fill(0xab)],
          ['job-id', encodeGradientMessage({ ...gradientFor(me, 101), jobId: 'other-job' })],
          ['truncated', good.subarray(0, good.length - 10)],
          ['parameter-count', encodeGradientMessage({ ...gradientFor(me, 102, PARAMS - 1) })],
          ['sender-mismatch', encodeGradientMessage({ ...gradientFor(nodes[2].peerId.toString(), 103) })]
        ]
        const send = async (bytes: Uint8Array): Promise<void> => {
          if (mode === 'gossip') {
            await attacker.pubsub.publish(gradientTopic(JOB), bytes)
          } else {
            const s = await attacker.libp2p.dialProtocol(peerIdFromString(victim.peerId.toString()), GRADIENT_PROTOCOL)
            s.send(lp.encode.single(bytes))
            await s.close()
          }
        }
        for (const [, bytes] of bad) await send(bytes)
        if (mode === 'stream') {
          // a frame announcing more than the limit is refused before it is read
          const s = await attacker.libp2p.dialProtocol(peerIdFromString(victim.peerId.toString()), GRADIENT_PROTOCOL)
          s.send(lp.encode.single(new Uint8Array(8)).subarray(0, 0)) // nothing: just open
          const prefix = new Uint8Array([0xff, 0xff, 0xff, 0x7f]) // varint 268435455
          s.send(prefix)
          await s.close().catch(() => {})
        } else {
          // a chunk whose declared chunk size does not fit its total
          const chunk = new Uint8Array(28 + 100)
          chunk.set([0x50, 0x32, 0x47, 0x43, 1], 0)
          new DataView(chunk.buffer).setUint32(20, 1 << 20)
          new DataView(chunk.buffer).setUint32(24, 100)
          await send(chunk)
        }
        const rejected = (): Record<string, number> => exchanges[0].stats().rejected
        const extra = mode === 'stream' ? 'too-large' : 'chunk'
        await waitFor(() => [...bad.map(([r]) => r), extra].every((r) => rejected()[r] >= 1), 'every bad message rejected at the victim')
        for (const [reason] of bad) expect(rejected()[reason]).toBe(1)
        expect(rejected()[extra]).toBe(1)
        const warn = records.filter((r) => r.msg === 'rejected an inbound gradient message' && r.component === 'gradient-exchange')
        expect(new Set(warn.map((r) => r.reason))).toEqual(new Set([...bad.map(([r]) => r), extra]))

        // the same sender's genuine message still arrives, once, and a repeat is a duplicate
        await exchanges[1].publish(gradientFor(me, 100), [victim.peerId.toString()])
        await waitFor(() => arrivals.some((a) => a.receiver === 0 && a.step === 100), 'the genuine message after the bad ones')
        expect(exchanges[0].stats().handlerErrors).toBe(1)
        await exchanges[1].publish(gradientFor(me, 100), [victim.peerId.toString()])
        await waitFor(() => rejected().duplicate === 1, 'the repeat counted as duplicate')
        expect(arrivals.filter((a) => a.receiver === 0)).toHaveLength(1)
        // counted, not warned about: members' own re-sends make duplicates
        expect(records.filter((r) => r.msg === 'rejected an inbound gradient message' && r.reason === 'duplicate' && r.level >= 40)).toEqual([])
        // a flood of one reason is logged a few times, counted every time
        for (let i = 0; i < 12; i++) await send(bad[0][1])
        await waitFor(() => rejected()[bad[0][0]] === 13, 'the flood counted')
        if (mode === 'gossip') {
          // every subscriber gets the attacker's publishes, in order: wait until the last has reached
          // them all, or a late one lands in the next test's exchanges on these nodes (seen: the
          // flood-only delivery test counting 3 'magic' rejections under a loaded full suite)
          await waitFor(() => exchanges.every((x, i) => i === 1 || (x.stats().rejected as Record<string, number>)[bad[0][0]] === 13), 'the flood at every subscriber')
        }
        const flood = records.filter((r) => r.msg === 'rejected an inbound gradient message' && r.reason === bad[0][0])
        // (every exchange of the test logs through this logger: up to 5 lines each)
        expect(flood.map((r) => r.rejectedSoFar as number).sort((a, b) => a - b).at(-1)).toBe(5)
        expect(victim.isStarted()).toBe(true)
      } finally {
        await stopAll(exchanges)
      }
    })
  })
}

describe('fault injection', () => {
  it('a dropped gradient sent again is not refused as a duplicate (the network lost it); a received one sent again is', async () => {
    // dropFraction 1 for step 3 only: every copy of step 3 is lost, so the copy sent again meets
    // the injector (dropped again) instead of the duplicate check
    const receiver = createGradientExchange({ mode: 'stream', node: nodes[0], jobId: JOB, faults: { seed: 1, dropFraction: 1, steps: [3, 4] } })
    const sender = createGradientExchange({ mode: 'stream', node: nodes[1], jobId: JOB })
    await receiver.start()
    await sender.start()
    try {
      const got: number[] = []
      const repeats: string[] = []
      receiver.onGradient((msg) => { got.push(msg.step) })
      receiver.onRepeat((step, from) => { repeats.push(`${step} ${from}`) })
      await sender.publish(gradientFor(ids()[1], 2, 1000), [ids()[0]])
      await sender.publish(gradientFor(ids()[1], 3, 1000), [ids()[0]])
      await waitFor(() => receiver.stats().droppedByFaults === 1, 'the first copy of step 3 dropped')
      await sender.publish(gradientFor(ids()[1], 3, 1000), [ids()[0]])
      await waitFor(() => receiver.stats().droppedByFaults === 2, 'the copy of step 3 sent again reached the injector')
      await sender.publish(gradientFor(ids()[1], 2, 1000), [ids()[0]])
      await waitFor(() => (receiver.stats().rejected.duplicate ?? 0) === 1, 'step 2 sent again refused as a duplicate')
      expect(receiver.stats().rejected.duplicate).toBe(1)
      expect(got).toEqual([2])
      // the refused copy still says where its sender is (a member behind may need a replay)
      expect(repeats).toEqual([`2 ${ids()[1]}`])
    } finally {
      await stopAll([receiver, sender])
    }
  })

  it('drops and delays a seeded fraction of inbound gradients, deterministically in count', async () => {
    const faults = { seed: 42, dropFraction: 0.3, delayFraction: 0.3, delayMs: [20, 60] as const }
    const receiver = createGradientExchange({ mode: 'stream', node: nodes[0], jobId: JOB, faults })
    const sender = createGradientExchange({ mode: 'stream', node: nodes[1], jobId: JOB })
    await receiver.start()
    await sender.start()
    try {
      const got: number[] = []
      receiver.onGradient((msg) => { got.push(msg.step) })
      const total = 40
      for (let step = 0; step < total; step++) await sender.publish(gradientFor(ids()[1], step, 1000), [ids()[0]])
      const predicted = createFaultInjector(faults)
      const decisions = Array.from({ length: total }, () => predicted.decide().kind)
      const drops = decisions.filter((d) => d === 'drop').length
      const delays = decisions.filter((d) => d === 'delay').length
      expect(drops).toBeGreaterThan(0)
      expect(delays).toBeGreaterThan(0)
      await waitFor(() => got.length === total - drops, `${total - drops} deliveries`)
      const stats = receiver.stats()
      expect(stats.droppedByFaults).toBe(drops)
      expect(stats.delayedByFaults).toBe(delays)
      expect(stats.delivered).toBe(total - drops)
      // sends were sequential, so only delays can reorder
      expect(got).not.toEqual([...got].sort((a, b) => a - b))
    } finally {
      await stopAll([receiver, sender])
    }
  })
})

describe('gossip publish reports', () => {
  it('reports recipients that are not subscribed as missed', async () => {
    const only = createGradientExchange({ mode: 'gossip', node: nodes[0], jobId: JOB })
    await only.start()
    try {
      await waitFor(() => nodes[0].pubsub.getSubscribers(gradientTopic(JOB)).length === 0, 'earlier subscriptions to be withdrawn')
      const report = await only.publish(gradientFor(ids()[0], 500, 1000), others(0))
      expect(report.reached).toEqual([])
      expect(report.missed.sort()).toEqual(others(0).sort())
    } finally {
      await only.stop()
    }
  })
})

describe('stream exchange failures', () => {
  it('reopens a stream that died between steps and reports unreachable recipients as missed', async () => {
    const receiver = createGradientExchange({ mode: 'stream', node: nodes[0], jobId: JOB })
    const sender = createGradientExchange({ mode: 'stream', node: nodes[2], jobId: JOB, sendTimeoutMs: 3_000 })
    await receiver.start()
    await sender.start()
    try {
      const got: number[] = []
      receiver.onGradient((msg) => { got.push(msg.step) })
      expect((await sender.publish(gradientFor(ids()[2], 0, 1000), [ids()[0]])).reached).toEqual([ids()[0]])
      // "reached" means handed to the stream; a hang-up before the bytes leave would lose step 0
      await waitFor(() => got.length === 1, 'step 0')
      await nodes[2].libp2p.hangUp(nodes[0].peerId)
      expect((await sender.publish(gradientFor(ids()[2], 1, 1000), [ids()[0]])).reached).toEqual([ids()[0]])
      await waitFor(() => got.length === 2, 'both steps')
      expect(got).toEqual([0, 1])
      // nodes[1] runs no stream exchange now: the protocol is refused, and the report says so
      const report = await sender.publish(gradientFor(ids()[2], 2, 1000), [ids()[0], ids()[1]])
      expect(report.reached).toEqual([ids()[0]])
      expect(report.missed).toEqual([ids()[1]])
      // ... but it is up: not refused
      expect(report.refused).toEqual([])
    } finally {
      await stopAll([receiver, sender])
    }
  })

  it('reports a recipient whose process is gone (its port refuses connections) as refused', async () => {
    const gone = await newNode({ bootstrap: nodes[0].dialableAddrs(), bootstrapInitialDelayMs: 100 })
    await gone.start()
    const goneId = gone.peerId.toString()
    const receiver = createGradientExchange({ mode: 'stream', node: gone, jobId: JOB })
    const sender = createGradientExchange({ mode: 'stream', node: nodes[3], jobId: JOB, sendTimeoutMs: 3_000 })
    await receiver.start()
    await sender.start()
    try {
      await nodes[3].connectTo(goneId, gone.dialableAddrs())
      const first = await sender.publish(gradientFor(ids()[3], 0, 1000), [goneId])
      expect(first).toMatchObject({ reached: [goneId], missed: [], refused: [] })
      await receiver.stop()
      await gone.stop()
      const after = await sender.publish(gradientFor(ids()[3], 1, 1000), [goneId])
      expect(after).toMatchObject({ reached: [], missed: [goneId], refused: [goneId] })
    } finally {
      await stopAll([sender])
    }
  })
})

describe('dialRefused', () => {
  it('is true for ECONNREFUSED alone or from every address, false when any address failed otherwise', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4001'), { code: 'ECONNREFUSED' })
    const timeout = new Error('The operation was aborted due to timeout')
    expect(dialRefused(refused)).toBe(true)
    expect(dialRefused(new AggregateError([refused, refused], 'All multiaddr dials failed'))).toBe(true)
    expect(dialRefused(new AggregateError([refused, timeout], 'All multiaddr dials failed'))).toBe(false)
    expect(dialRefused(timeout)).toBe(false)
    expect(dialRefused(new Error('wrapped', { cause: refused }))).toBe(true)
  })
})
