/**
 * Splitting a gradient message into gossip-sized chunks and putting it back together.
 * gossipsub silently drops messages of 4 MiB or more, so anything above the chunk size travels
 * as chunks with a 28-byte header:
 *
 *   0 magic 'P2GC'   4 version u8 (1)   5 reserved u8 x3 (0)   8 message id (8 random bytes)
 *  16 index u32     20 chunk size u32 (every chunk but the last is exactly this long)
 *  24 total length u32, then the chunk's bytes (offset = index x chunk size)
 *
 * Reassembly is bounded: total length capped, few pending messages per sender, a global byte
 * budget, and a timeout after which an incomplete message is dropped.
 */
import { randomBytes } from 'node:crypto'
import { reject, type Decoded } from '../messages/rejection.js'

export const CHUNK_MAGIC = new Uint8Array([0x50, 0x32, 0x47, 0x43]) // 'P2GC'
export const CHUNK_VERSION = 1
export const CHUNK_HEADER_BYTES = 28
export const MIN_CHUNK_BYTES = 16 * 1024

export interface ChunkHeader {
  readonly messageId: string
  readonly index: number
  readonly chunkSize: number
  readonly total: number
  readonly count: number
  readonly data: Uint8Array
}

export function isChunk (bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === CHUNK_MAGIC[0] && bytes[1] === CHUNK_MAGIC[1] && bytes[2] === CHUNK_MAGIC[2] && bytes[3] === CHUNK_MAGIC[3]
}

export function splitIntoChunks (message: Uint8Array, chunkSize: number): Uint8Array[] {
  const id = randomBytes(8)
  const count = Math.ceil(message.length / chunkSize)
  const chunks: Uint8Array[] = []
  for (let index = 0; index < count; index++) {
    const data = message.subarray(index * chunkSize, Math.min(message.length, (index + 1) * chunkSize))
    const out = new Uint8Array(CHUNK_HEADER_BYTES + data.length)
    const view = new DataView(out.buffer)
    out.set(CHUNK_MAGIC, 0)
    out[4] = CHUNK_VERSION
    out.set(id, 8)
    view.setUint32(16, index)
    view.setUint32(20, chunkSize)
    view.setUint32(24, message.length)
    out.set(data, CHUNK_HEADER_BYTES)
    chunks.push(out)
  }
  return chunks
}

export function parseChunk (bytes: Uint8Array, maxTotal: number): Decoded<ChunkHeader> {
  if (bytes.length < CHUNK_HEADER_BYTES) return reject('truncated', `chunk of ${bytes.length} bytes is shorter than its header`)
  if (!isChunk(bytes)) return reject('magic', 'not a gradient chunk')
  if (bytes[4] !== CHUNK_VERSION) return reject('version', `chunk version ${bytes[4]} is not supported (this peer speaks ${CHUNK_VERSION})`)
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) return reject('malformed', 'reserved chunk header bytes are not zero')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const index = view.getUint32(16)
  const chunkSize = view.getUint32(20)
  const total = view.getUint32(24)
  if (total > maxTotal) return reject('too-large', `chunked message of ${total} bytes exceeds the ${maxTotal}-byte limit`)
  if (chunkSize < MIN_CHUNK_BYTES || chunkSize >= total) return reject('chunk', `chunk size ${chunkSize} is not in [${MIN_CHUNK_BYTES}, ${total})`)
  const count = Math.ceil(total / chunkSize)
  if (index >= count) return reject('chunk', `chunk index ${index} is beyond the ${count} chunks of the message`)
  const expected = Math.min(chunkSize, total - index * chunkSize)
  const data = bytes.subarray(CHUNK_HEADER_BYTES)
  if (data.length !== expected) return reject('chunk', `chunk ${index} carries ${data.length} bytes, expected ${expected}`)
  const messageId = Buffer.from(bytes.buffer, bytes.byteOffset + 8, 8).toString('hex')
  return { ok: true, value: { messageId, index, chunkSize, total, count, data } }
}

interface Assembly {
  readonly key: string
  readonly from: string
  readonly chunkSize: number
  readonly buffer: Uint8Array
  readonly received: Uint8Array
  remaining: number
  readonly timer: NodeJS.Timeout
}

export interface Reassembler {
  /** a complete message when this chunk was the last missing one */
  add(from: string, chunk: ChunkHeader): Decoded<Uint8Array | undefined>
  clear(): void
  pendingBytes(): number
}

export interface ReassemblerOptions {
  readonly maxPendingPerSender: number
  readonly maxPendingBytes: number
  readonly timeoutMs: number
  onIncomplete(from: string, received: number, count: number): void
}

export function createReassembler (options: ReassemblerOptions): Reassembler {
  const assemblies = new Map<string, Assembly>()
  let pendingBytes = 0

  const drop = (assembly: Assembly): void => {
    clearTimeout(assembly.timer)
    if (assemblies.delete(assembly.key)) pendingBytes -= assembly.buffer.length
  }

  return {
    add (from, chunk) {
      const key = `${from}/${chunk.messageId}`
      let assembly = assemblies.get(key)
      if (assembly === undefined) {
        const mine = [...assemblies.values()].filter((a) => a.from === from)
        // a sender starting more messages than it could legitimately have in flight: evict its oldest
        if (mine.length >= options.maxPendingPerSender) {
          options.onIncomplete(from, mine[0].received.length - mine[0].remaining, mine[0].received.length)
          drop(mine[0])
        }
        if (pendingBytes + chunk.total > options.maxPendingBytes) {
          return reject('too-large', `reassembly budget exhausted (${pendingBytes} bytes pending, ${chunk.total} more asked)`)
        }
        const created: Assembly = {
          key,
          from,
          chunkSize: chunk.chunkSize,
          buffer: new Uint8Array(chunk.total),
          received: new Uint8Array(chunk.count),
          remaining: chunk.count,
          timer: setTimeout(() => {
            options.onIncomplete(from, created.received.length - created.remaining, created.received.length)
            drop(created)
          }, options.timeoutMs)
        }
        assembly = created
        assemblies.set(key, assembly)
        pendingBytes += chunk.total
      }
      if (assembly.chunkSize !== chunk.chunkSize || assembly.buffer.length !== chunk.total) {
        drop(assembly)
        return reject('chunk', `chunk ${chunk.index} disagrees with earlier chunks of its message on the chunk size or total`)
      }
      if (assembly.received[chunk.index] === 1) return reject('duplicate', `chunk ${chunk.index} of message ${chunk.messageId} arrived twice`)
      assembly.received[chunk.index] = 1
      assembly.buffer.set(chunk.data, chunk.index * chunk.chunkSize)
      assembly.remaining--
      if (assembly.remaining > 0) return { ok: true, value: undefined }
      drop(assembly)
      return { ok: true, value: assembly.buffer }
    },
    clear () {
      for (const a of assemblies.values()) clearTimeout(a.timer)
      assemblies.clear()
      pendingBytes = 0
    },
    pendingBytes: () => pendingBytes
  }
}
