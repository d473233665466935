/**
 * Fetch a training snapshot from a peer over `/p2pmld/state/1.0.0`. Every way the transfer can go
 * wrong (refusal, stall, timeout, oversize, bad framing, early close, corrupt data) ends in a
 * StateSyncError, never a hang. A snapshot before `minStep` is refused as stale, unless it is a
 * finished job's final state (`meta.finished: true`): there will be no later one.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { DEFAULT_MAX_SNAPSHOT_BYTES, SnapshotError, createSnapshotDecoder, type TrainingSnapshot } from '../snapshot/index.js'
import { StateSyncError, StateSyncRemoteError } from './state-sync-errors.js'
import {
  MAX_FRAME_BYTES, STATE_SYNC_PROTOCOL, StateSyncQueuedSchema, StateSyncRequestSchema, StateSyncStatusSchema, encodeJsonFrame,
  type StateSyncRequest
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

export async function fetchSnapshot (
  node: Libp2p,
  peer: PeerId | Multiaddr,
  request: StateSyncRequest,
  options: FetchSnapshotOptions = {}
): Promise<TrainingSnapshot> {
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
  const onCallerAbort = (): void => fail(new StateSyncError('aborted', 'state transfer aborted by the caller'))
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

    const decoder = createSnapshotDecoder({ maxBytes })
    let announced: number | undefined
    let position: number | undefined
    for await (const frame of lp.decode(reader, { maxDataLength: FRAME_LIMIT })) {
      armStall()
      if (announced === undefined) {
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
        continue
      }
      if (decoder.received + frame.byteLength > announced) {
        throw new StateSyncError('corrupt', `peer sent more than the ${announced} bytes it announced`)
      }
      decoder.push(frame)
      if (decoder.expectedBytes !== undefined && decoder.expectedBytes !== announced) {
        throw new StateSyncError('corrupt', `snapshot header says ${decoder.expectedBytes} bytes but the peer announced ${announced}`)
      }
    }
    if (context.aborted !== undefined) throw context.aborted
    if (announced === undefined) throw new StateSyncError('closed', 'peer closed the stream without answering the state-sync request')
    const snapshot = decoder.finish()
    const minStep = parsedRequest.data.minStep
    // a finished job's final state (meta.finished) is the last there will be, whatever step was asked for
    if (minStep !== undefined && snapshot.step < minStep && snapshot.meta.finished !== true) {
      throw new StateSyncError('stale', `peer sent a snapshot at step ${snapshot.step}, before the requested step ${minStep}`)
    }
    return snapshot
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
