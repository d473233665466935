/**
 * Read a libp2p stream with bounded memory: when more than `highWaterBytes` are queued unread the
 * stream is paused (yamux then stops granting window to the sender) and resumed once the reader
 * has caught up. The stream's own iterator queues without bound.
 */
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'

type Chunk = StreamMessageEvent['data']

export interface StreamReader extends AsyncIterable<Chunk> {
  /** stop listening; unread data stays in the stream */
  release(): void
}

/** yamux may have up to its max window (16 MiB) in flight when we pause */
const IN_FLIGHT_ALLOWANCE = 16 * 1024 * 1024

export function createStreamReader (stream: Stream, highWaterBytes: number): StreamReader {
  const queue: Chunk[] = []
  let queued = 0
  let ended = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  const notify = (): void => { const w = wake; wake = undefined; w?.() }

  stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, highWaterBytes + IN_FLIGHT_ALLOWANCE)

  const onMessage = (event: StreamMessageEvent): void => {
    queue.push(event.data)
    queued += event.data.byteLength
    if (queued > highWaterBytes && stream.readStatus === 'readable') stream.pause()
    notify()
  }
  const onClose = (event: StreamCloseEvent): void => {
    ended = true
    failure ??= event.error
    notify()
  }
  const onRemoteCloseWrite = (): void => {
    ended = true
    notify()
  }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('close', onClose)
  stream.addEventListener('remoteCloseWrite', onRemoteCloseWrite)
  if (stream.remoteWriteStatus === 'closed' || stream.status !== 'open') ended = true

  function release (): void {
    stream.removeEventListener('message', onMessage)
    stream.removeEventListener('close', onClose)
    stream.removeEventListener('remoteCloseWrite', onRemoteCloseWrite)
  }

  async function * iterate (): AsyncGenerator<Chunk> {
    try {
      while (true) {
        const next = queue.shift()
        if (next !== undefined) {
          queued -= next.byteLength
          if (queued <= highWaterBytes / 4 && stream.readStatus === 'paused') stream.resume()
          yield next
          continue
        }
        if (failure !== undefined) throw failure
        if (ended) {
          // data that arrived while paused is still in the stream's buffer
          if (stream.readStatus === 'paused' && stream.readBufferLength > 0) {
            stream.resume()
            continue
          }
          return
        }
        await new Promise<void>((resolve) => { wake = resolve })
      }
    } finally {
      release()
    }
  }

  return { release, [Symbol.asyncIterator]: iterate }
}
