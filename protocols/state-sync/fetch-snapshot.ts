/**
 * Fetch a training snapshot from a peer over `/p2pmld/state/1.0.0`. Every way the transfer can go
 * wrong (refusal, stall, timeout, oversize, bad framing, early close, corrupt data) ends in a
 * StateSyncError, never a hang. A snapshot before `minStep` is refused as stale, unless it is a
 * finished job's final state (`meta.finished: true`): there will be no later one.
 * `fetchSnapshotRange` fetches one part of the state's floats (snapshot-range.ts) the same way.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import {
  DEFAULT_MAX_SNAPSHOT_BYTES, SnapshotError, createSnapshotDecoder, createSnapshotRangeDecoder, floatRange,
  type SnapshotChunk, type SnapshotRange, type TrainingSnapshot
} from '../snapshot/index.js'
import { StateSyncError, StateSyncRemoteError } from './state-sync-errors.js'
import {
  MAX_FRAME_BYTES, STATE_SYNC_PROTOCOL, StateSyncQueuedSchema, StateSyncRequestSchema, StateSyncStatusSchema, encodeJsonFrame,
  type StateSyncRequest, type StateSyncStatus
} from './state-sync-messages.js'
import { createStreamReader } from './stream-reader.js'

export interface FetchSnapshotOptions {
  /** whole-transfer limit, dial included (default 15 min) */
  readonly timeoutMs?: number
  /** fail when no data arrives for this long (default 30 s) */
  readonly stallTimeoutMs?: number
  /** largest encoded snapshot accepted (default 4 GiB) */
  readonly maxBytes?: number
  /** unread bytes held before pausing the stream (default 8 MiB) */
  readonly highWaterBytes?: number
  readonly signal?: AbortSignal
  /** the donor serves others first: this request's place in its queue (1 = next), on every change */
  readonly onQueued?: (position: number) => void
}

/** largest frame payload a correct server sends */
const FRAME_LIMIT = MAX_FRAME_BYTES

function toStateSyncError (error: unknown, context: { aborted?: StateSyncError }): StateSyncError {
  if (context.aborted !== undefined) return context.aborted
  if (error instanceof StateSyncError) return error
  if (error instanceof SnapshotError) {
    if (error.reason === 'too-large') return new StateSyncError('too-large', error.message, { cause: error })
    if (error.reason === 'truncated') return new StateSyncError('closed', `stream ended before the whole snapshot arrived: ${error.message}`, { cause: error })
    return new StateSyncError('corrupt', `received snapshot is invalid: ${error.message}`, { cause: error })
  }
  const name = (error as { name?: string } | undefined)?.name
  if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError') {
    return new StateSyncError('protocol', `peer sent a frame over the ${FRAME_LIMIT}-byte limit`, { cause: error })
  }
  if (name === 'UnexpectedEOFError') {
    return new StateSyncError('closed', 'stream ended in the middle of a frame', { cause: error })
  }
  return new StateSyncError('closed', `state-sync stream failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
}

/** where the body of an accepted transfer goes */
interface TransferSink<T> {
  push(frame: SnapshotChunk): void
  finish(): T
  readonly received: number
  /** total size once the body's header has arrived */
  readonly expectedBytes: number | undefined
}

type OkStatus = Extract<StateSyncStatus, { ok: true }>

/**
 * One request on `/p2pmld/state/1.0.0`: dial, send the request, wait through queue frames for the
 * status, then feed the announced bytes to the sink `accept` makes from the ok status.
 */
async function requestState<T> (
  node: Libp2p,
  peer: PeerId | Multiaddr,
  request: StateSyncRequest,
  options: FetchSnapshotOptions,
  accept: (status: OkStatus, maxBytes: number) => TransferSink<T>
): Promise<T> {
  const parsedRequest = StateSyncRequestSchema.safeParse(request)
  if (!parsedRequest.success) {
    throw new StateSyncError('bad-request', `invalid state-sync request: ${parsedRequest.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  }
  const timeoutMs = options.timeoutMs ?? 15 * 60_000
  const stallTimeoutMs = options.stallTimeoutMs ?? 30_000
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES
  const context: { aborted?: StateSyncError } = {}
  const dialController = new AbortController()
  let stream: Stream | undefined

  // libp2p may keep listeners on the signal given to dialProtocol after the dial resolves, so
  // it is aborted only while the dial is in flight; later failures abort the stream instead
  let dialing = true
  const fail = (error: StateSyncError): void => {
    context.aborted ??= error
    if (dialing) dialController.abort(error)
    stream?.abort(error)
  }
  const timer = setTimeout(() => fail(new StateSyncError('timeout', `state transfer did not finish within ${timeoutMs} ms`)), timeoutMs)
  let stallTimer: ReturnType<typeof setTimeout> | undefined
  const armStall = (): void => {
    clearTimeout(stallTimer)
    stallTimer = setTimeout(() => fail(new StateSyncError('stalled', `no state-sync data for ${stallTimeoutMs} ms; the peer stalled`)), stallTimeoutMs)
  }
  // a StateSyncError as the signal's reason says why (e.g. a part given up on as late)
  const onCallerAbort = (): void => {
    const why: unknown = options.signal?.reason
    fail(why instanceof StateSyncError ? why : new StateSyncError('aborted', 'state transfer aborted by the caller'))
  }
  if (options.signal?.aborted === true) onCallerAbort()
  options.signal?.addEventListener('abort', onCallerAbort, { once: true })

  try {
    armStall()
    try {
      stream = await node.dialProtocol(peer, STATE_SYNC_PROTOCOL, { signal: dialController.signal })
    } catch (error) {
      if (context.aborted !== undefined) throw context.aborted
      throw new StateSyncError('dial', `could not open ${STATE_SYNC_PROTOCOL} to ${peer.toString()}: ${(error as Error).message}`, { cause: error })
    } finally {
      dialing = false
    }
    const reader = createStreamReader(stream, options.highWaterBytes ?? 8 * 1024 * 1024)
    stream.send(lp.encode.single(encodeJsonFrame(parsedRequest.data)))
    // a stall or timeout while closing aborts the stream, which rejects this
    await stream.close()

    let sink: TransferSink<T> | undefined
    let announced: number | undefined
    let position: number | undefined
    for await (const frame of lp.decode(reader, { maxDataLength: FRAME_LIMIT })) {
      armStall()
      if (announced === undefined || sink === undefined) {
        let raw: unknown
        try {
          raw = JSON.parse(new TextDecoder().decode(frame.subarray()))
        } catch {
          throw new StateSyncError('protocol', 'first state-sync frame is not a JSON status')
        }
        const queued = StateSyncQueuedSchema.safeParse(raw)
        if (queued.success) {
          // waiting for a transfer slot: the frame kept the stall timer from firing (the server
          // repeats the position as a keepalive; the caller hears changes)
          if (queued.data.queued !== position) options.onQueued?.(queued.data.queued)
          position = queued.data.queued
          continue
        }
        const status = StateSyncStatusSchema.safeParse(raw)
        if (!status.success) throw new StateSyncError('protocol', `invalid state-sync status frame: ${status.error.message}`)
        if (!status.data.ok) throw new StateSyncRemoteError(status.data.reason, `peer refused the state transfer (${status.data.reason}): ${status.data.message}`)
        if (status.data.totalBytes > maxBytes) {
          throw new StateSyncError('too-large', `peer offers a snapshot of ${status.data.totalBytes} bytes, over the limit of ${maxBytes}; raise maxBytes if this model is expected`)
        }
        announced = status.data.totalBytes
        sink = accept(status.data, maxBytes)
        continue
      }
      if (sink.received + frame.byteLength > announced) {
        throw new StateSyncError('corrupt', `peer sent more than the ${announced} bytes it announced`)
      }
      sink.push(frame)
      if (sink.expectedBytes !== undefined && sink.expectedBytes !== announced) {
        throw new StateSyncError('corrupt', `snapshot header says ${sink.expectedBytes} bytes but the peer announced ${announced}`)
      }
    }
    if (context.aborted !== undefined) throw context.aborted
    if (sink === undefined) throw new StateSyncError('closed', 'peer closed the stream without answering the state-sync request')
    return sink.finish()
  } catch (error) {
    const typed = toStateSyncError(error, context)
    stream?.abort(typed)
    throw typed
  } finally {
    clearTimeout(timer)
    clearTimeout(stallTimer)
    options.signal?.removeEventListener('abort', onCallerAbort)
  }
}

export async function fetchSnapshot (
  node: Libp2p,
  peer: PeerId | Multiaddr,
  request: StateSyncRequest,
  options: FetchSnapshotOptions = {}
): Promise<TrainingSnapshot> {
  if (request.range !== undefined) throw new StateSyncError('bad-request', 'fetchSnapshot fetches a whole snapshot: use fetchSnapshotRange for a range')
  const snapshot = await requestState(node, peer, request, options, (_status, maxBytes) => createSnapshotDecoder({ maxBytes }))
  const minStep = request.minStep
  // a finished job's final state (meta.finished) is the last there will be, whatever step was asked for
  if (minStep !== undefined && snapshot.step < minStep && snapshot.meta.finished !== true) {
    throw new StateSyncError('stale', `peer sent a snapshot at step ${snapshot.step}, before the requested step ${minStep}`)
  }
  return snapshot
}

/** One part of a donor's state, with the step and parameter digest the donor announced for it. */
export interface FetchedRange extends SnapshotRange {
  readonly step: number
  /** stateDigest of the donor's whole state at `step` (parameters and optimizer state) */
  readonly digest: string
}

/**
 * Fetch part `request.range.index` of `request.range.count` of a peer's state. The announced
 * bounds must be that part of the announced counts (else 'corrupt'); the announced step is that of
 * the JSON part. Not checked here: that the floats are the donor's (see fetch-from-donors.ts).
 */
export async function fetchSnapshotRange (
  node: Libp2p,
  peer: PeerId | Multiaddr,
  request: StateSyncRequest & { range: { index: number, count: number } },
  options: FetchSnapshotOptions = {}
): Promise<FetchedRange> {
  let announced: OkStatus | undefined
  const part = await requestState(node, peer, request, options, (status, maxBytes) => {
    if (status.range === undefined || status.digest === undefined) throw new StateSyncError('protocol', 'peer answered a range request without the range and digest')
    announced = status
    return createSnapshotRangeDecoder(status.range, { maxBytes })
  })
  const status = announced as OkStatus
  const expected = floatRange(part.paramCount + part.optimizerCount, request.range.index, request.range.count)
  if (expected.start !== part.range.start || expected.end !== part.range.end) {
    throw new StateSyncError('corrupt', `peer sent floats [${part.range.start}, ${part.range.end}) for range ${request.range.index} of ${request.range.count}, which is [${expected.start}, ${expected.end})`)
  }
  if (part.json.step !== status.step) throw new StateSyncError('corrupt', `peer announced step ${status.step} but sent the state of step ${part.json.step}`)
  return { ...part, step: status.step, digest: status.digest as string }
}
