import type { Libp2p, Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  assembleSnapshotRanges, createSnapshotRangeDecoder, encodeSnapshot, encodeSnapshotRange, floatRange, stateDigest, type TrainingSnapshot
} from '../../protocols/snapshot/index.js'
import {
  STATE_SYNC_PROTOCOL, StateSyncError, StateSyncRefusedError, fetchStateFromDonors, registerStateSyncServer,
  type StateSyncRequest, type StateSyncServer
} from '../../protocols/state-sync/index.js'
import { createStreamReader } from '../../protocols/state-sync/stream-reader.js'
import { createLoopbackNode, makeSnapshot, sameBits } from './state-sync-helpers.js'

function decodeRange (snapshot: TrainingSnapshot, index: number, count: number): ReturnType<ReturnType<typeof createSnapshotRangeDecoder>['finish']> {
  const encoded = encodeSnapshotRange(snapshot, index, count, 1000)
  const decoder = createSnapshotRangeDecoder(encoded.range)
  for (const chunk of encoded.chunks) {
    // split each chunk unevenly, as frames arrive
    for (let at = 0; at < chunk.byteLength; at += 777) decoder.push(chunk.subarray(at, at + 777))
  }
  expect(decoder.received).toBe(encoded.byteLength)
  return decoder.finish()
}

function copyOf (snapshot: TrainingSnapshot): TrainingSnapshot {
  return { ...snapshot, params: snapshot.params.slice(), optimizerState: snapshot.optimizerState.slice() }
}

describe('snapshot ranges', () => {
  it('floatRange tiles the vector in near-equal parts', () => {
    for (const [total, count] of [[10, 3], [7, 7], [5, 8], [1_000_003, 64]] as const) {
      let next = 0
      const sizes: number[] = []
      for (let i = 0; i < count; i++) {
        const r = floatRange(total, i, count)
        expect(r.start).toBe(next)
        sizes.push(r.end - r.start)
        next = r.end
      }
      expect(next).toBe(total)
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
    }
    expect(() => floatRange(10, 3, 3)).toThrow(RangeError)
  })

  it('ranges split across the parameter/optimizer boundary reassemble bit-exactly', () => {
    const snapshot = makeSnapshot(10_001, 20_003, 42)
    for (const count of [1, 2, 3, 7]) {
      const ranges = Array.from({ length: count }, (_, i) => decodeRange(snapshot, i, count))
      const whole = assembleSnapshotRanges([...ranges].reverse())
      expect(whole.step).toBe(42)
      expect(whole.meta).toEqual(snapshot.meta)
      expect(sameBits(whole.params, snapshot.params)).toBe(true)
      expect(sameBits(whole.optimizerState, snapshot.optimizerState)).toBe(true)
    }
  })

  it('refuses ranges that leave a gap, disagree on sizes or overflow', () => {
    const snapshot = makeSnapshot(100, 50)
    const a = decodeRange(snapshot, 0, 3)
    const c = decodeRange(snapshot, 2, 3)
    expect(() => assembleSnapshotRanges([a, c])).toThrow(/gap/)
    const other = decodeRange(makeSnapshot(100, 49), 1, 3)
    expect(() => assembleSnapshotRanges([a, other, c])).toThrow(/size/)
    const encoded = encodeSnapshotRange(snapshot, 0, 3, 1000)
    const decoder = createSnapshotRangeDecoder(encoded.range)
    for (const chunk of encoded.chunks) decoder.push(chunk)
    expect(() => decoder.push(new Uint8Array(4))).toThrow(/past its announced end/)
    const beyond = createSnapshotRangeDecoder({ start: 0, end: 151 })
    expect(() => { for (const chunk of encodeSnapshotRange(snapshot, 0, 1, 1000).chunks) beyond.push(chunk) }).toThrow(/beyond/)
  })
})

/** what a hand-written donor answers a request with: a state and the digest it announces, or holding the requester in the queue */
type RawAnswer = { state: TrainingSnapshot, digest: string } | 'hold'

/** A hand-written (Byzantine or stalling) donor on `node`. */
async function registerRawDonor (node: Libp2p, answer: (request: StateSyncRequest) => RawAnswer): Promise<void> {
  const send = (stream: Stream, value: unknown): void => { stream.send(lp.encode.single(new TextEncoder().encode(JSON.stringify(value)))) }
  await node.handle(STATE_SYNC_PROTOCOL, async (stream: Stream) => {
    const reader = createStreamReader(stream, 64 * 1024)
    let request: StateSyncRequest | undefined
    for await (const frame of lp.decode(reader)) {
      request = JSON.parse(new TextDecoder().decode(frame.subarray())) as StateSyncRequest
      break
    }
    reader.release()
    const reply = answer(request as StateSyncRequest)
    if (reply === 'hold') {
      // first in the queue for ever: the keepalive keeps the requester's stall timer quiet
      const keepalive = setInterval(() => { try { send(stream, { queued: 1 }) } catch { clearInterval(keepalive) } }, 200)
      stream.addEventListener('close', () => { clearInterval(keepalive) })
      return
    }
    const { state, digest } = reply
    if (request?.range === undefined) {
      const whole = encodeSnapshot(state, { checksum: false })
      send(stream, { ok: true, totalBytes: whole.byteLength, step: state.step })
      for (const chunk of whole.chunks) stream.send(lp.encode.single(chunk))
    } else {
      const part = encodeSnapshotRange(state, request.range.index, request.range.count, 1 << 20)
      send(stream, { ok: true, totalBytes: part.byteLength, step: state.step, range: part.range, digest })
      for (const chunk of part.chunks) stream.send(lp.encode.single(chunk))
    }
    await stream.close()
  })
}

/** announces `digest` (the honest one) but sends every value changed, in a range or whole */
async function registerSneakyDonor (node: Libp2p, honest: TrainingSnapshot, digest: string): Promise<void> {
  const forged = { ...honest, params: honest.params.map((v) => v + 1), optimizerState: honest.optimizerState.map((v) => v + 1) }
  await registerRawDonor(node, () => ({ state: forged, digest }))
}

describe('fetching the state from several donors', () => {
  const nodes: Libp2p[] = []
  let client: Libp2p
  const honest = makeSnapshot(300_001, 600_002, 12)
  const digest = stateDigest(honest.params, honest.optimizerState)

  beforeAll(async () => {
    for (let i = 0; i < 4; i++) nodes.push(await createLoopbackNode())
    client = await createLoopbackNode()
    for (const n of nodes) await client.peerStore.merge(n.peerId, { multiaddrs: n.getMultiaddrs() })
  })
  afterAll(async () => {
    await client?.stop()
    for (const n of nodes) await n.stop()
  })

  /** serve `snapshot` from donor i, recording what each request asked for */
  const serveAll = async (snapshots: Array<TrainingSnapshot | ((request: StateSyncRequest) => TrainingSnapshot)>, seen: StateSyncRequest[][]): Promise<StateSyncServer[]> =>
    await Promise.all(snapshots.map(async (s, i) => {
      seen[i] = []
      return await registerStateSyncServer(nodes[i], {
        getSnapshot: async (request) => {
          seen[i].push(request)
          return typeof s === 'function' ? s(request) : s
        }
      })
    }))
  const ids = (n: number): string[] => nodes.slice(0, n).map((node) => node.peerId.toString())

  it('takes one range from each donor and checks the whole against their digest', async () => {
    const seen: StateSyncRequest[][] = []
    // members build one job config with its keys in different orders: still one state
    const reordered = { ...copyOf(honest), jobConfig: Object.fromEntries(Object.entries(honest.jobConfig as Record<string, unknown>).reverse()) }
    const servers = await serveAll([copyOf(honest), reordered, copyOf(honest)], seen)
    try {
      const fetched = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 3 })
      expect(fetched.verified).toBe(true)
      expect(fetched.from).toEqual(ids(3))
      expect(seen.map((s) => s.map((r) => r.range))).toEqual([[{ index: 0, count: 3 }], [{ index: 1, count: 3 }], [{ index: 2, count: 3 }]])
      expect(sameBits(fetched.snapshot.params, honest.params)).toBe(true)
      expect(sameBits(fetched.snapshot.optimizerState, honest.optimizerState)).toBe(true)
      expect(fetched.snapshot.meta).toEqual(honest.meta)
    } finally {
      await Promise.all(servers.map((s) => s.stop()))
    }
  })

  it('a donor holding another state is outvoted: the whole state comes from a donor f+1 vouch for', async () => {
    const forged = copyOf(honest)
    forged.params[5] += 1
    const seen: StateSyncRequest[][] = []
    // the forger is named first, as the coordinator could name it
    const servers = await serveAll([forged, copyOf(honest), copyOf(honest)], seen)
    const fallbacks: string[] = []
    try {
      const fetched = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 2, onFallback: (reason, next) => fallbacks.push(`${next}: ${reason}`) })
      expect(fetched.verified).toBe(true)
      expect(fetched.from).toEqual([ids(3)[1]])
      expect(stateDigest(fetched.snapshot.params, fetched.snapshot.optimizerState)).toBe(digest)
      expect(fallbacks).toHaveLength(1)
      expect(fallbacks[0]).toMatch(/announced different states/)
      expect(seen[0].every((r) => r.range !== undefined)).toBe(true)
    } finally {
      await Promise.all(servers.map((s) => s.stop()))
    }
  })

  it('a donor that announces the right digest but sends other values is caught; with too few vouching the fetch fails', async () => {
    const sneaky = nodes[0]
    await registerSneakyDonor(sneaky, honest, digest)
    const honestServers = await Promise.all([1, 2].map(async (i) => await registerStateSyncServer(nodes[i], { getSnapshot: async () => copyOf(honest) })))
    try {
      const fallbacks: string[] = []
      const fetched = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 2, onFallback: (reason) => fallbacks.push(reason) })
      expect(fetched.verified).toBe(true)
      // the liar's whole state fails the check too; an honest donor's passes
      expect(ids(3).slice(1)).toContain(fetched.from[0])
      expect(sameBits(fetched.snapshot.params, honest.params)).toBe(true)
      expect(sameBits(fetched.snapshot.optimizerState, honest.optimizerState)).toBe(true)
      expect(fallbacks[0]).toMatch(/does not match the digest they announced/)
      // its range in the optimizer state's part is caught as well (the digest covers both)
      const again = await fetchStateFromDonors(client, [ids(3)[1], ids(3)[2], ids(3)[0]], { jobId: 'job-1', minStep: 12 }, { vouchers: 2 })
      expect(again.from).toHaveLength(1)
      expect(sameBits(again.snapshot.optimizerState, honest.optimizerState)).toBe(true)

      // a donor with yet another state besides, and f + 1 = 3 needed: no state is vouched for, none taken
      await honestServers[1].stop()
      const forged = copyOf(honest)
      forged.params[9] = -1
      honestServers[1] = await registerStateSyncServer(nodes[2], { getSnapshot: async () => forged })
      const error = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 3 }).then(() => undefined, (e: unknown) => e)
      expect(error).toBeInstanceOf(StateSyncError)
      expect((error as Error).message).toMatch(/no state is announced by 3 donors/)
      expect((error as StateSyncError).code).toBe('corrupt')
    } finally {
      await sneaky.unhandle(STATE_SYNC_PROTOCOL)
      await Promise.all(honestServers.map((s) => s.stop()))
    }
  })

  it('job details one donor forges (finished, lr, epoch; its LR schedule and history) are not taken', async () => {
    const forgedMeta = { ...copyOf(honest), epoch: 99, meta: { ...honest.meta, lr: 999, finished: true } }
    await registerRawDonor(nodes[0], () => ({ state: forgedMeta, digest }))
    const servers = await Promise.all([1, 2].map(async (i) => await registerStateSyncServer(nodes[i], { getSnapshot: async () => copyOf(honest) })))
    try {
      const fetched = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 2 })
      expect(fetched.verified).toBe(true)
      expect(fetched.from).toEqual([ids(3)[1]])
      expect(fetched.snapshot.meta).toEqual(honest.meta)
      expect(fetched.snapshot.epoch).toBe(honest.epoch)

      // the same floats and key fields, but its own LR schedule and history, named first: the
      // schedule most donors sent is taken
      await nodes[0].unhandle(STATE_SYNC_PROTOCOL)
      const forgedSchedule = { ...copyOf(honest), meta: { ...honest.meta, convergence: { best: -1, badEpochs: 99 }, history: [{ epoch: 99, step: 1, validationLoss: 0, validationAccuracy: 1, lr: 9 }] } }
      await registerRawDonor(nodes[0], () => ({ state: forgedSchedule, digest }))
      const again = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 2 })
      expect(again.from).toEqual(ids(3))
      expect(again.snapshot.meta).toEqual(honest.meta)
    } finally {
      await nodes[0].unhandle(STATE_SYNC_PROTOCOL)
      await Promise.all(servers.map((s) => s.stop()))
    }
  })

  it('a donor honest in its range but forging the whole state one step later is refused when another range failed', async () => {
    const later = { ...copyOf(honest), step: honest.step + 1, params: honest.params.map((v) => -v) }
    const liar = registerRawDonor(nodes[0], (request) => request.range?.count === 1 ? { state: later, digest: stateDigest(later.params, later.optimizerState) } : { state: copyOf(honest), digest })
    await liar
    const servers = [
      await registerStateSyncServer(nodes[1], { getSnapshot: async () => copyOf(honest) }),
      await registerStateSyncServer(nodes[2], { getSnapshot: async (request) => { if (request.range?.count === 3) throw new StateSyncRefusedError('not-ready', 'busy elsewhere'); return copyOf(honest) } })
    ]
    try {
      const fetched = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 2 })
      expect(fetched.verified).toBe(true)
      expect(fetched.from).toEqual([ids(3)[1]])
      expect(fetched.snapshot.step).toBe(12)
      expect(sameBits(fetched.snapshot.params, honest.params)).toBe(true)
    } finally {
      await nodes[0].unhandle(STATE_SYNC_PROTOCOL)
      await Promise.all(servers.map((s) => s.stop()))
    }
  })

  it('with no state f+1 donors announce (a liar named first, an honest donor refusing), none is taken', async () => {
    const forged = { ...copyOf(honest), params: honest.params.map((v) => v / 2) }
    await registerRawDonor(nodes[0], () => ({ state: forged, digest: stateDigest(forged.params, forged.optimizerState) }))
    const servers = [
      await registerStateSyncServer(nodes[1], { getSnapshot: async () => copyOf(honest) }),
      await registerStateSyncServer(nodes[2], { getSnapshot: async () => { throw new StateSyncRefusedError('not-ready', 'no state yet') } })
    ]
    try {
      const error = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 2 }).then(() => undefined, (e: unknown) => e)
      expect(error).toBeInstanceOf(StateSyncError)
      expect((error as StateSyncError).code).toBe('corrupt')
    } finally {
      await nodes[0].unhandle(STATE_SYNC_PROTOCOL)
      await Promise.all(servers.map((s) => s.stop()))
    }
  })

  it('members at different steps: the state of the coordinator that admitted the joiner at its step, unchecked; never another donor\'s', async () => {
    // a member crashed having sent its step-12 gradient to node 1 only: node 1 completed step 12,
    // the coordinator (node 0) waits at 12 for the gradient only the re-joining member can send
    const ahead = { ...makeSnapshot(300_001, 600_002, 13), params: honest.params.map((v) => v * 0.99) }
    const servers = await serveAll([copyOf(honest), ahead], [])
    try {
      // no f+1 = 2 donors announce one state: without the admission, none is taken (as before)
      const refused = await fetchStateFromDonors(client, ids(2), { jobId: 'job-1', minStep: 12 }, { vouchers: 2 }).then(() => undefined, (e: unknown) => e)
      expect((refused as StateSyncError).code).toBe('stale')
      expect((refused as Error).message).toMatch(/step 13 .*step 12|step 12 .*step 13/)
      // admitted by node 0 at step 12: its state at 12
      const fallbacks: string[] = []
      const fetched = await fetchStateFromDonors(client, [ids(2)[1], ids(2)[0]], { jobId: 'job-1', minStep: 12 }, { vouchers: 2, admittedBy: ids(2)[0], onFallback: (reason, next) => fallbacks.push(`${next}: ${reason}`) })
      expect(fetched.verified).toBe(false)
      expect(fetched.from).toEqual([ids(2)[0]])
      expect(fetched.unchecked).toMatch(/past step 12 or did not answer.*coordinator that admitted this peer at step 12/)
      expect(fetched.snapshot.step).toBe(12)
      expect(stateDigest(fetched.snapshot.params, fetched.snapshot.optimizerState)).toBe(digest)
      expect(fallbacks).toHaveLength(1)
      // the donor ahead cannot have it taken by claiming to be the coordinator: its step is not the admission step
      const notAtStep = await fetchStateFromDonors(client, ids(2), { jobId: 'job-1', minStep: 12 }, { vouchers: 2, admittedBy: ids(2)[1] }).then(() => undefined, (e: unknown) => e)
      expect(notAtStep).toBeInstanceOf(StateSyncError)
    } finally {
      await Promise.all(servers.map((s) => s.stop()))
    }
    // another donor announcing another state for the admission step: a liar among them, none taken
    const forged = { ...copyOf(honest), params: honest.params.map((v) => v / 2) }
    const again = await serveAll([copyOf(honest), ahead, forged], [])
    try {
      const error = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 3, admittedBy: ids(3)[0] }).then(() => undefined, (e: unknown) => e)
      expect((error as StateSyncError).code).toBe('corrupt')
    } finally {
      await Promise.all(again.map((s) => s.stop()))
    }
  })

  it('a donor that holds its requesters in the queue does not hold the joiner: its part is given up on', async () => {
    await registerRawDonor(nodes[0], () => 'hold')
    const servers = await Promise.all([1, 2].map(async (i) => await registerStateSyncServer(nodes[i], { getSnapshot: async () => copyOf(honest) })))
    try {
      const started = performance.now()
      const fetched = await fetchStateFromDonors(client, ids(3), { jobId: 'job-1', minStep: 12 }, { vouchers: 2 })
      const ms = performance.now() - started
      expect(fetched.verified).toBe(true)
      expect(fetched.from).toHaveLength(1)
      expect(fetched.from[0]).not.toBe(ids(3)[0])
      // twice the time the others took plus 5 s of grace, not the 15-minute transfer limit
      expect(ms).toBeLessThan(15_000)
    } finally {
      await nodes[0].unhandle(STATE_SYNC_PROTOCOL)
      await Promise.all(servers.map((s) => s.stop()))
    }
  }, 30_000)

  it('a donor that does not serve ranges, or has left: the whole state from a donor that announced the vouched digest', async () => {
    const seen: StateSyncRequest[][] = []
    const servers = await serveAll([
      (request) => { if (request.range !== undefined) throw new StateSyncRefusedError('bad-request', 'no ranges here'); return copyOf(honest) },
      copyOf(honest), copyOf(honest)
    ], seen)
    const gone = ids(4)[3]
    await nodes[3].stop()
    try {
      const fetched = await fetchStateFromDonors(client, [...ids(3), gone], { jobId: 'job-1', minStep: 12 }, { vouchers: 2, stallTimeoutMs: 5_000 })
      expect(fetched.verified).toBe(true)
      // the donors that announced the digest come first
      expect(fetched.from).toEqual([ids(3)[1]])
      expect(sameBits(fetched.snapshot.params, honest.params)).toBe(true)
    } finally {
      await Promise.all(servers.map((s) => s.stop()))
    }
  })
})
