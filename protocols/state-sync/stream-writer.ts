/**
 * Length-prefixed writes with bounded memory: after each frame, wait while the muxer asks for a
 * drain or more than `maxBufferedBytes` sit in the stream's write queue.
 */
import type { Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { StateSyncError } from './state-sync-errors.js'

/** Resolve on `name`; reject on close, on `signal`, or after `stallTimeoutMs`. Leaves no listener or timer. */
function waitForEvent (stream: Stream, name: 'idle' | 'drain', signal: AbortSignal, stallTimeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer)
      stream.removeEventListener(name, onEvent)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onEvent = (): void => { cleanup(); resolve() }
    const onClose = (): void => { cleanup(); reject(new StateSyncError('closed', 'stream closed while waiting to write')) }
    const onAbort = (): void => { cleanup(); reject(signal.reason) }
    const timer = setTimeout(() => {
      cleanup()
      reject(new StateSyncError('stalled', `peer accepted no data for ${stallTimeoutMs} ms`))
    }, stallTimeoutMs)
    stream.addEventListener(name, onEvent)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}

export interface WriteFrameOptions {
  readonly maxBufferedBytes: number
  readonly signal: AbortSignal
  readonly stallTimeoutMs: number
}

export async function writeFrame (stream: Stream, payload: Uint8Array, options: WriteFrameOptions): Promise<void> {
  options.signal.throwIfAborted()
  stream.send(lp.encode.single(payload))
  while (stream.writableNeedsDrain || stream.writeBufferLength > options.maxBufferedBytes) {
    options.signal.throwIfAborted()
    // not stream.onDrain(): in @libp2p/utils 7.4 its promise stays resolved after the first
    // drain, so awaiting it in a loop spins without yielding to I/O and the transfer hangs
    await waitForEvent(stream, stream.writableNeedsDrain ? 'drain' : 'idle', options.signal, options.stallTimeoutMs)
  }
}
