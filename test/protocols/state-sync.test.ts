import type { Libp2p, Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeSnapshot, encodeSnapshotToBytes } from '../../protocols/snapshot/index.js'
import {
  STATE_SYNC_PROTOCOL, StateSyncError, StateSyncRefusedError, StateSyncRemoteError, fetchSnapshot,
  registerStateSyncServer, type StateSyncRequest
} from '../../protocols/state-sync/index.js'
import { createLoopbackNode, makeSnapshot, sameBits } from './state-sync-helpers.js'

async function expectSyncError (promise: Promise<unknown>, code: string): Promise<StateSyncError> {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  expect(error).toBeInstanceOf(StateSyncError)
  expect((error as StateSyncError).code, (error as Error).message).toBe(code)
  return error as StateSyncError
}

function sendJson (stream: Stream, value: unknown): void {
  stream.send(lp.encode.single(new TextEncoder().encode(JSON.stringify(value))))
}

/** serve the protocol with a hand-written (misbehaving) server */
async function withRawServer (node: Libp2p, serve: (stream: Stream) => Promise<void>, run: () => Promise<void>): Promise<void> {
  await node.handle(STATE_SYNC_PROTOCOL, async (stream) => {
    try { await serve(stream) } catch { stream.abort(new Error('raw server failed')) }
  })
  try { await run() } finally { await node.unhandle(STATE_SYNC_PROTOCOL) }
}

describe('state sync over libp2p', () => {
  let server: Libp2p
  let client: Libp2p

  beforeAll(async () => {
    server = await createLoopbackNode()
    client = await createLoopbackNode()
  })
  afterAll(async () => {
    await client?.stop()
    await server?.stop()
  })

  it('transfers a ~50 M-float snapshot bit-exactly', async () => {
    const snapshot = makeSnapshot(30_000_000, 20_000_000, 77)
    const requests: Array<{ request: StateSyncRequest, peer: string }> = []
    const sync = await registerStateSyncServer(server, {
      getSnapshot: async (request, peer) => { requests.push({ request, peer: peer.toString() }); return snapshot }
    })
    try {
      const started = performance.now()
      const received = await fetchSnapshot(client, server.getMultiaddrs()[0], { jobId: 'job-1', minStep: 50 })
      const seconds = (performance.now() - started) / 1000
      console.log(`state sync: ${(200 / seconds).toFixed(0)} MB/s for 200 MB`)
      expect(requests).toEqual([{ request: { jobId: 'job-1', minStep: 50 }, peer: client.peerId.toString() }])
      expect(received.step).toBe(77)
      expect(received.epoch).toBe(1)
      expect(received.cursor).toBe(320)
      expect(received.meta).toEqual(snapshot.meta)
      expect(received.jobConfig).toEqual(snapshot.jobConfig)
      expect(sameBits(received.params, snapshot.params)).toBe(true)
      expect(sameBits(received.optimizerState, snapshot.optimizerState)).toBe(true)
      expect(sync.active).toBe(0)
    } finally {
      await sync.stop()
    }
  })

  it('stays bit-exact when the client pauses the stream constantly (tiny read high-water mark)', async () => {
    const snapshot = makeSnapshot(3_000_000, 1_000_000, 3)
    const sync = await registerStateSyncServer(server, { getSnapshot: async () => snapshot, chunkBytes: 256 * 1024, maxBufferedBytes: 512 * 1024 })
    try {
      const received = await fetchSnapshot(client, server.getMultiaddrs()[0], { jobId: 'job-1' }, { highWaterBytes: 64 * 1024 })
      expect(sameBits(received.params, snapshot.params)).toBe(true)
      expect(sameBits(received.optimizerState, snapshot.optimizerState)).toBe(true)
    } finally {
      await sync.stop()
    }
  })

  it('delivers server refusals as typed errors', async () => {
    const sync = await registerStateSyncServer(server, {
      getSnapshot: async (request) => {
        if (request.jobId === 'nope') throw new StateSyncRefusedError('unknown-job', 'no job "nope" on this peer')
        if (request.jobId === 'broken') throw new Error('disk on fire')
        return makeSnapshot(10, 0, 5)
      }
    })
    try {
      const addr = server.getMultiaddrs()[0]
      const unknown = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'nope' }), 'remote')
      expect(unknown).toBeInstanceOf(StateSyncRemoteError)
      expect((unknown as StateSyncRemoteError).reason).toBe('unknown-job')
      expect(unknown.message).toMatch(/no job "nope"/)
      const internal = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'broken' }), 'remote')
      expect((internal as StateSyncRemoteError).reason).toBe('internal')
      expect(internal.message).toMatch(/disk on fire/)
      const early = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1', minStep: 6 }), 'remote')
      expect((early as StateSyncRemoteError).reason).toBe('not-ready')
      await expectSyncError(fetchSnapshot(client, addr, { jobId: '' }), 'bad-request')
      // the server still works after all that
      const ok = await fetchSnapshot(client, addr, { jobId: 'job-1', minStep: 5 })
      expect(ok.params.length).toBe(10)
    } finally {
      await sync.stop()
    }
  })

  it('enforces the client maxBytes limit and the server concurrency limit', async () => {
    const snapshot = makeSnapshot(1_000_000, 0)
    // the size on the wire: state sync sends no sha256 trailer (Noise authenticates the stream)
    const total = encodeSnapshot(makeSnapshot(1, 0), { checksum: false }).byteLength - 4 + 4_000_000
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const sync = await registerStateSyncServer(server, {
      maxConcurrent: 1,
      maxQueued: 0, // no queue: a request beyond the slots is refused at once
      getSnapshot: async (request) => {
        if (request.jobId === 'slow') await gate
        return snapshot
      }
    })
    try {
      const addr = server.getMultiaddrs()[0]
      const error = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }, { maxBytes: total - 1 }), 'too-large')
      expect(error.message).toMatch(/over the limit/)
      const full = await fetchSnapshot(client, addr, { jobId: 'job-1' }, { maxBytes: total })
      expect(full.params.length).toBe(1_000_000)

      const slow = fetchSnapshot(client, addr, { jobId: 'slow' })
      while (sync.active === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      const busy = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'remote')
      expect((busy as StateSyncRemoteError).reason).toBe('busy')
      release()
      expect(sameBits((await slow).params, snapshot.params)).toBe(true)
    } finally {
      release()
      await sync.stop()
    }
  })

  it('queues requests beyond the transfer slots, tells each its position while it waits (past the stall timeout), moves them up when one leaves, and refuses beyond the queue', async () => {
    const snapshot = makeSnapshot(100_000, 3)
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const rejected: string[] = []
    const sync = await registerStateSyncServer(server, {
      maxConcurrent: 1,
      maxQueued: 2,
      queueKeepaliveMs: 100,
      onRejected: (reason) => rejected.push(reason),
      getSnapshot: async (request) => {
        if (request.jobId === 'slow') await gate
        return snapshot
      }
    })
    const until = async (what: string, check: () => boolean): Promise<void> => {
      const deadline = Date.now() + 10_000
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
    try {
      const addr = server.getMultiaddrs()[0]
      const slow = fetchSnapshot(client, addr, { jobId: 'slow' })
      await until('the slow transfer holds the slot', () => sync.active === 1)
      const first: number[] = []
      const second: number[] = []
      const leaving = new AbortController()
      const a = fetchSnapshot(client, addr, { jobId: 'job-1' }, { stallTimeoutMs: 400, signal: leaving.signal, onQueued: (p) => first.push(p) })
      const aFailed = expectSyncError(a, 'aborted')
      await until('the first waiter is told it is next', () => first.length === 1)
      const b = fetchSnapshot(client, addr, { jobId: 'job-1' }, { stallTimeoutMs: 400, onQueued: (p) => second.push(p) })
      await until('the second waiter is told its place', () => second.length === 1)
      expect([first, second, sync.queued]).toEqual([[1], [2], 2])
      const full = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'remote')
      expect((full as StateSyncRemoteError).reason).toBe('busy')
      expect(full.message).toMatch(/serving 1 state transfers with 2 more waiting/)
      // longer than the clients' 400 ms stall limit: the position frames keep them waiting
      await new Promise((resolve) => setTimeout(resolve, 700))
      leaving.abort()
      await aFailed
      await until('the second waiter moves up', () => second.length === 2)
      expect(second).toEqual([2, 1])
      expect(sync.queued).toBe(1)
      release()
      expect(sameBits((await slow).params, snapshot.params)).toBe(true)
      expect(sameBits((await b).params, snapshot.params)).toBe(true)
      expect(sync.queued).toBe(0)
      // the one refusal is the full queue's; a requester that left the queue was not refused
      expect(rejected).toEqual(['busy'])
    } finally {
      release()
      await sync.stop()
    }
  })

  it('counts a requester that resets mid-transfer (it gave up on this donor, or stopped) as expected, not as unreadable', async () => {
    const snapshot = makeSnapshot(4_000_000, 4_000_000)
    const rejected: Array<{ reason: string, message: string, expected: boolean | undefined }> = []
    const sync = await registerStateSyncServer(server, {
      onRejected: (reason, _peer, message, expected) => rejected.push({ reason, message, expected }),
      getSnapshot: async () => snapshot
    })
    try {
      const leaving = new AbortController()
      const fetching = expectSyncError(fetchSnapshot(client, server.getMultiaddrs()[0], { jobId: 'job-1' }, { signal: leaving.signal }), 'aborted')
      const deadline = Date.now() + 10_000
      while (sync.active === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1))
      leaving.abort()
      await fetching
      while (rejected.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
      expect(rejected).toEqual([{ reason: 'unreadable', message: 'the requester reset the stream during the transfer', expected: true }])
    } finally {
      await sync.stop()
    }
  })

  it('turns a server that closes mid-stream into a typed error', async () => {
    const bytes = encodeSnapshotToBytes(makeSnapshot(500_000, 0))
    await withRawServer(server, async (stream) => {
      sendJson(stream, { ok: true, totalBytes: bytes.byteLength, step: 10 })
      stream.send(lp.encode.single(bytes.subarray(0, 600_000)))
      await stream.close()
    }, async () => {
      const error = await expectSyncError(fetchSnapshot(client, server.getMultiaddrs()[0], { jobId: 'job-1' }), 'closed')
      expect(error.message).toMatch(/before the whole snapshot/)
    })
  })

  it('turns a server reset mid-stream into a typed error', async () => {
    const bytes = encodeSnapshotToBytes(makeSnapshot(500_000, 0))
    await withRawServer(server, async (stream) => {
      sendJson(stream, { ok: true, totalBytes: bytes.byteLength, step: 10 })
      stream.send(lp.encode.single(bytes.subarray(0, 600_000)))
      await new Promise((resolve) => setTimeout(resolve, 50))
      stream.abort(new Error('server crashed'))
    }, async () => {
      await expectSyncError(fetchSnapshot(client, server.getMultiaddrs()[0], { jobId: 'job-1' }), 'closed')
    })
  })

  it('rejects corrupt data, wrong lengths and oversized frames from a lying server', async () => {
    const bytes = encodeSnapshotToBytes(makeSnapshot(100_000, 100))
    const addr = server.getMultiaddrs()[0]
    const corrupt = bytes.slice()
    corrupt[200_000] ^= 4
    await withRawServer(server, async (stream) => {
      sendJson(stream, { ok: true, totalBytes: corrupt.byteLength, step: 10 })
      stream.send(lp.encode.single(corrupt))
      await stream.close()
    }, async () => {
      const error = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'corrupt')
      expect(error.message).toMatch(/checksum/)
    })
    // announces fewer bytes than the snapshot header says
    await withRawServer(server, async (stream) => {
      sendJson(stream, { ok: true, totalBytes: bytes.byteLength - 4, step: 10 })
      stream.send(lp.encode.single(bytes.subarray(0, 1000)))
      await stream.close()
    }, async () => {
      await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'corrupt')
    })
    // sends more than it announced
    await withRawServer(server, async (stream) => {
      sendJson(stream, { ok: true, totalBytes: 40, step: 10 })
      stream.send(lp.encode.single(bytes.subarray(0, 1000)))
      await stream.close()
    }, async () => {
      await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'corrupt')
    })
    // a frame above the 1 MiB limit
    await withRawServer(server, async (stream) => {
      sendJson(stream, { ok: true, totalBytes: 3 * 1024 * 1024, step: 10 })
      stream.send(lp.encode.single(new Uint8Array(2 * 1024 * 1024)))
      await stream.close()
    }, async () => {
      await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'protocol')
    })
    // a status frame that is not the protocol's
    await withRawServer(server, async (stream) => {
      sendJson(stream, { hello: 'world' })
      await stream.close()
    }, async () => {
      await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'protocol')
    })
  })

  it('gives up on a stalled server and honours the caller signal', async () => {
    const bytes = encodeSnapshotToBytes(makeSnapshot(100_000, 0))
    const addr = server.getMultiaddrs()[0]
    const held: Stream[] = []
    await withRawServer(server, async (stream) => {
      held.push(stream)
      sendJson(stream, { ok: true, totalBytes: bytes.byteLength, step: 10 })
      stream.send(lp.encode.single(bytes.subarray(0, 1000)))
      // then nothing, without closing
    }, async () => {
      const started = performance.now()
      const stalled = await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }, { stallTimeoutMs: 400 }), 'stalled')
      expect(stalled.message).toMatch(/stalled/)
      expect(performance.now() - started).toBeLessThan(5000)
      await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }, { timeoutMs: 300 }), 'timeout')
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 200)
      await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }, { signal: controller.signal }), 'aborted')
    })
    for (const stream of held) stream.abort(new Error('test over'))
  })

  it('stop() unregisters the protocol, idempotently', async () => {
    const sync = await registerStateSyncServer(server, { getSnapshot: async () => makeSnapshot(4, 0) })
    const addr = server.getMultiaddrs()[0]
    expect((await fetchSnapshot(client, addr, { jobId: 'job-1' })).params.length).toBe(4)
    await sync.stop()
    await sync.stop()
    await expectSyncError(fetchSnapshot(client, addr, { jobId: 'job-1' }), 'dial')
  })
})
