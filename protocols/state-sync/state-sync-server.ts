/**
 * Serve training snapshots on `/p2pmld/state/1.0.0` to joining or restarting peers.
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { DEFAULT_CHUNK_BYTES, encodeSnapshot, encodeSnapshotRange, stateDigest, type EncodedSnapshot, type TrainingSnapshot } from '../snapshot/index.js'
import { StateSyncError, StateSyncRefusedError, type StateSyncRefusal } from './state-sync-errors.js'
import {
  MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES, STATE_SYNC_PROTOCOL, StateSyncRequestSchema, encodeJsonFrame,
  type StateSyncRequest, type StateSyncStatus
} from './state-sync-messages.js'
import { createStreamReader } from './stream-reader.js'
import { writeFrame } from './stream-writer.js'

export interface StateSyncServerOptions {
  /**
   * Produce the snapshot to send. Its Float32Arrays are streamed without copying, so they must not
   * change until the transfer ends: hand out a copy taken between steps (and cache it for
   * concurrent requests). Throw StateSyncRefusedError to refuse with a specific reason. Range
   * requests announce the snapshot's stateDigest, computed once per params array: hand out the
   * same arrays for the same step and the digest is not computed again.
   */
  readonly getSnapshot: (request: StateSyncRequest, remotePeer: PeerId) => Promise<TrainingSnapshot>
  /** transfers served at once (default 2); further requests wait in a queue */
  readonly maxConcurrent?: number
  /** requests that wait for a transfer slot, told their position; beyond them 'busy' (default 32) */
  readonly maxQueued?: number
  /** a waiting requester hears its position at least this often, so it does not count the wait as a stall (default 10 s) */
  readonly queueKeepaliveMs?: number
  /** snapshot bytes per frame, at most 1 MiB (default 1 MiB) */
  readonly chunkBytes?: number
  /** time allowed to read the request (default 10 s) */
  readonly requestTimeoutMs?: number
  /** whole-transfer limit (default 15 min) */
  readonly timeoutMs?: number
  /** abort when the client accepts no data for this long (default 30 s) */
  readonly stallTimeoutMs?: number
  /** bytes allowed in the stream's write queue before waiting (default 4 MiB) */
  readonly maxBufferedBytes?: number
  readonly onError?: (error: unknown, remotePeer: PeerId) => void
  /**
   * every request refused (by refusal reason) or broken off ('unreadable'): the daemon counts them;
   * `expected`: the requester reset the stream (it gave up on this donor, took the range from
   * another, or stopped), which is no fault of either side
   */
  readonly onRejected?: (reason: StateSyncRefusal | 'unreadable', remotePeer: PeerId, message: string, expected?: boolean) => void
}

export interface StateSyncServer {
  /** unregister the protocol and abort transfers in progress; idempotent */
  stop(): Promise<void>
  /** requests being handled: transfers in progress, queued or being refused */
  readonly active: number
  /** requests waiting for a transfer slot */
  readonly queued: number
}

/** a request waiting for a transfer slot */
interface Waiter {
  readonly stream: Stream
  /** hands it the slot (the count is taken for it) */
  grant(): void
  /** tells it its position, 1 = next */
  tell(position: number): void
  /** stops its keepalive and close listener */
  dispose(): void
}

async function readRequest (stream: Stream, timeoutMs: number): Promise<unknown> {
  const reader = createStreamReader(stream, MAX_CONTROL_FRAME_BYTES)
  const timer = setTimeout(() => stream.abort(new StateSyncError('timeout', `no state-sync request within ${timeoutMs} ms`)), timeoutMs)
  try {
    for await (const frame of lp.decode(reader, { maxDataLength: MAX_CONTROL_FRAME_BYTES })) {
      try {
        return JSON.parse(new TextDecoder().decode(frame.subarray()))
      } catch {
        return undefined
      }
    }
    throw new StateSyncError('closed', 'stream closed before a state-sync request arrived')
  } finally {
    clearTimeout(timer)
    reader.release()
  }
}

/** close our side, waiting at most `ms` for queued data to leave */
async function closeWithin (stream: Stream, ms: number): Promise<void> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(new StateSyncError('stalled', `peer accepted no data for ${ms} ms`)), ms)
  try {
    await stream.close({ signal: controller.signal })
  } finally {
    clearTimeout(timer)
  }
}

export async function registerStateSyncServer (node: Libp2p, options: StateSyncServerOptions): Promise<StateSyncServer> {
  const maxConcurrent = options.maxConcurrent ?? 2
  const maxQueued = options.maxQueued ?? 32
  const queueKeepaliveMs = options.queueKeepaliveMs ?? 10_000
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES
  if (chunkBytes > MAX_FRAME_BYTES) throw new RangeError(`chunkBytes must be at most ${MAX_FRAME_BYTES}`)
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000
  const timeoutMs = options.timeoutMs ?? 15 * 60_000
  const stallTimeoutMs = options.stallTimeoutMs ?? 30_000
  const maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024
  const active = new Set<Stream>()
  /** stateDigest of a snapshot getSnapshot handed out (by its params array), for range requests */
  const digests = new WeakMap<Float32Array, string>()
  const digestOf = (snapshot: TrainingSnapshot): string => {
    let digest = digests.get(snapshot.params)
    if (digest === undefined) {
      digest = stateDigest(snapshot.params, snapshot.optimizerState)
      digests.set(snapshot.params, digest)
    }
    return digest
  }
  let stopped = false
  /** transfer slots taken */
  let serving = 0
  const waiting: Waiter[] = []

  const announcePositions = (): void => { waiting.forEach((w, i) => { w.tell(i + 1) }) }

  /**
   * Takes a transfer slot: at once when one is free and nobody waits, else in FIFO order after
   * waiting in the queue (told its position). False when the queue is full; throws when the
   * requester closes the stream while it waits.
   */
  async function acquire (stream: Stream): Promise<boolean> {
    if (serving < maxConcurrent && waiting.length === 0) {
      serving++
      return true
    }
    if (waiting.length >= maxQueued) return false
    await new Promise<void>((resolve, reject) => {
      let position = 0
      const send = (): void => {
        try {
          stream.send(lp.encode.single(encodeJsonFrame({ queued: position })))
        } catch {
          // the stream is gone: its close listener takes it out of the queue
        }
      }
      const keepalive = setInterval(send, queueKeepaliveMs)
      const onClose = (): void => {
        const at = waiting.indexOf(waiter)
        if (at >= 0) waiting.splice(at, 1)
        waiter.dispose()
        announcePositions()
        reject(new StateSyncError('closed', 'the requester left the state-transfer queue'))
      }
      const waiter: Waiter = {
        stream,
        grant: resolve,
        tell (p) {
          if (p === position) return
          position = p
          send()
        },
        dispose () {
          clearInterval(keepalive)
          stream.removeEventListener('close', onClose)
        }
      }
      stream.addEventListener('close', onClose, { once: true })
      waiting.push(waiter)
      waiter.tell(waiting.length)
    })
    return true
  }

  /** frees a slot: the longest waiter takes it, and the rest hear their new positions */
  function release (): void {
    serving--
    while (serving < maxConcurrent && waiting.length > 0) {
      const next = waiting.shift() as Waiter
      next.dispose()
      serving++
      next.grant()
    }
    announcePositions()
  }

  async function refuse (stream: Stream, reason: StateSyncRefusal, message: string, remotePeer: PeerId): Promise<void> {
    options.onRejected?.(reason, remotePeer, message)
    const status: StateSyncStatus = { ok: false, reason, message: message.slice(0, 4096) }
    stream.send(lp.encode.single(encodeJsonFrame(status)))
    await closeWithin(stream, stallTimeoutMs)
  }

  async function serve (stream: Stream, connection: Connection): Promise<void> {
    const raw = await readRequest(stream, requestTimeoutMs)
    const parsed = StateSyncRequestSchema.safeParse(raw)
    if (!parsed.success) {
      await refuse(stream, 'bad-request', `invalid state-sync request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`, connection.remotePeer)
      return
    }
    let granted: boolean
    try {
      granted = await acquire(stream)
    } catch (error) {
      // the requester closed its stream while it waited: it gave up (a joiner stopped or found
      // another donor), which is not a request this server refused
      if (error instanceof StateSyncError && error.code === 'closed') return
      throw error
    }
    if (!granted) {
      await refuse(stream, 'busy', `serving ${maxConcurrent} state transfers with ${waiting.length} more waiting; retry later or ask another peer`, connection.remotePeer)
      return
    }
    try {
      await transfer(stream, connection, parsed.data)
    } finally {
      release()
    }
  }

  async function transfer (stream: Stream, connection: Connection, request: StateSyncRequest): Promise<void> {
    let snapshot: TrainingSnapshot
    try {
      snapshot = await options.getSnapshot(request, connection.remotePeer)
    } catch (error) {
      if (error instanceof StateSyncRefusedError) {
        await refuse(stream, error.reason, error.message, connection.remotePeer)
      } else {
        await refuse(stream, 'internal', `snapshot provider failed: ${error instanceof Error ? error.message : String(error)}`, connection.remotePeer)
      }
      return
    }
    const minStep = request.minStep
    // a finished job's final state (meta.finished) is served for any later step: there is no later state
    if (minStep !== undefined && snapshot.step < minStep && snapshot.meta.finished !== true) {
      await refuse(stream, 'not-ready', `this peer is at step ${snapshot.step}, before the requested step ${minStep}`, connection.remotePeer)
      return
    }
    // no sha256 trailer: Noise authenticates every byte of the stream, and a member adopting the
    // state checks its parameters against the digest f+1 members vouch for (snapshot-format.ts)
    let encoded: EncodedSnapshot
    let status: StateSyncStatus
    if (request.range === undefined) {
      encoded = encodeSnapshot(snapshot, { chunkBytes, checksum: false })
      status = { ok: true, totalBytes: encoded.byteLength, step: snapshot.step }
    } else {
      const part = encodeSnapshotRange(snapshot, request.range.index, request.range.count, chunkBytes)
      encoded = part
      status = { ok: true, totalBytes: part.byteLength, step: snapshot.step, range: part.range, digest: digestOf(snapshot) }
    }
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(new StateSyncError('timeout', `state transfer did not finish within ${timeoutMs} ms`)), timeoutMs)
    try {
      const writeOptions = { maxBufferedBytes, signal: deadline.signal, stallTimeoutMs }
      await writeFrame(stream, encodeJsonFrame(status), writeOptions)
      for (const chunk of encoded.chunks) {
        for (let offset = 0; offset < chunk.byteLength; offset += MAX_FRAME_BYTES) {
          await writeFrame(stream, chunk.subarray(offset, offset + MAX_FRAME_BYTES), writeOptions)
        }
      }
      await closeWithin(stream, stallTimeoutMs)
    } finally {
      clearTimeout(timer)
    }
  }

  await node.handle(STATE_SYNC_PROTOCOL, async (stream, connection) => {
    if (stopped) {
      stream.abort(new StateSyncError('closed', 'state-sync server is stopping'))
      return
    }
    active.add(stream)
    try {
      await serve(stream, connection)
    } catch (error) {
      stream.abort(error instanceof Error ? error : new Error(String(error)))
      // as json-request.ts counts a requester that went away before its request arrived
      const reset = error instanceof Error && error.name === 'StreamResetError'
      options.onRejected?.('unreadable', connection.remotePeer, reset ? 'the requester reset the stream during the transfer' : error instanceof Error ? error.message : String(error), reset)
      options.onError?.(error, connection.remotePeer)
    } finally {
      active.delete(stream)
    }
  }, { maxInboundStreams: maxConcurrent + maxQueued + 8 })

  return {
    get active () { return active.size },
    get queued () { return waiting.length },
    async stop () {
      if (stopped) return
      stopped = true
      await node.unhandle(STATE_SYNC_PROTOCOL)
      for (const stream of active) stream.abort(new StateSyncError('closed', 'state-sync server stopped'))
      active.clear()
    }
  }
}
