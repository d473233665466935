/**
 * A training snapshot over the broker: the encoder's chunks packed into messages below the
 * broker's size limit (each sent as a 'snapshot-chunk' with its index and whether it is the
 * last), and on the receiving end the chunks taken in order into a decoder. A chunk out of order
 * (one was lost) or a refusal in its place fails the fetch.
 */
import { createSnapshotDecoder, encodeSnapshot, type TrainingSnapshot } from '../snapshot/index.js'
import { BrokerRequestRefusedError, ReplyHeaderSchema, SnapshotChunkHeaderSchema } from './control-messages.js'
import type { Envelope } from './envelope.js'

/** room left in each message for its signed envelope's header */
const HEADER_ROOM_BYTES = 64 * 1024

/**
 * The bodies of the messages that carry `snapshot`, in order, each at most `maxMessageBytes` less
 * the header room (one larger chunk goes alone); `last` marks the final one. Made one at a time,
 * as they are sent, so that only one message's copy of the state exists at once.
 */
export function * snapshotMessageBodies(snapshot: TrainingSnapshot, maxMessageBytes: number): Generator<{ readonly body: Uint8Array, readonly last: boolean }> {
  const limit = maxMessageBytes - HEADER_ROOM_BYTES
  const encoded = encodeSnapshot(snapshot, { chunkBytes: Math.max(4, Math.floor(limit / 8) * 4) })
  let parts: Uint8Array[] = []
  let size = 0
  for (const chunk of encoded.chunks) {
    if (size + chunk.byteLength > limit && parts.length > 0) {
      yield { body: Buffer.concat(parts), last: false }
      parts = []
      size = 0
    }
    parts.push(chunk)
    size += chunk.byteLength
  }
  yield { body: Buffer.concat(parts), last: true }
}

/**
 * Takes `peer`'s answers to one snapshot request: accept(envelope) returns true once the last
 * chunk arrived (then result() holds the snapshot) and throws a BrokerRequestRefusedError for a
 * refusal or a chunk out of order.
 */
export function createSnapshotReceiver(peer: string): { accept(envelope: Envelope): boolean, result(): TrainingSnapshot | undefined } {
  const decoder = createSnapshotDecoder()
  let next = 0
  let result: TrainingSnapshot | undefined
  return {
    accept(e) {
      if (e.header.kind === 'reply') {
        const parsed = ReplyHeaderSchema.safeParse(e.header)
        throw new BrokerRequestRefusedError(`${peer} refused the snapshot: ${parsed.success ? parsed.data.error ?? '' : 'malformed reply'}`)
      }
      const chunk = SnapshotChunkHeaderSchema.parse(e.header)
      if (chunk.index !== next) throw new BrokerRequestRefusedError(`snapshot chunk ${chunk.index} from ${peer} arrived where ${next} was due (a chunk was lost): fetch again`)
      next++
      decoder.push(e.body)
      if (!chunk.last) return false
      result = decoder.finish()
      return true
    },
    result: () => result
  }
}
