/**
 * Length-prefixed writes with bounded memory: after each frame, wait while the muxer asks for a
 * drain or more than `maxBufferedBytes` sit in the stream's write queue.
 */
import type { Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'

function waitForEvent (stream: Stream, name: 'idle' | 'drain', signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener(name, onEvent)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onEvent = (): void => { cleanup(); resolve() }
    const onClose = (): void => { cleanup(); reject(new Error('stream closed while waiting to write')) }
    const onAbort = (): void => { cleanup(); reject(signal.reason) }
    if (signal.aborted) { reject(signal.reason); return }
    stream.addEventListener(name, onEvent)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}

export async function writeFrame (
  stream: Stream,
  payload: Uint8Array,
  options: { maxBufferedBytes: number, signal: AbortSignal, stallSignal: () => AbortSignal }
): Promise<void> {
  options.signal.throwIfAborted()
  stream.send(lp.encode.single(payload))
  while (stream.writableNeedsDrain || stream.writeBufferLength > options.maxBufferedBytes) {
    const signal = AbortSignal.any([options.signal, options.stallSignal()])
    // not stream.onDrain(): in @libp2p/utils 7.4 its promise stays resolved after the first
    // drain, so awaiting it in a loop spins without yielding to I/O and the transfer hangs
    await waitForEvent(stream, stream.writableNeedsDrain ? 'drain' : 'idle', signal)
  }
}
