/**
 * Encode a snapshot as a sequence of chunks: the header and JSON first, then the float blocks as
 * views straight into the caller's Float32Arrays (no copy on little-endian hosts), then the
 * sha256 trailer (unless options.checksum is false: see snapshot-format.ts). The caller must not mutate params/optimizerState until the iteration ends.
 */
import { createHash } from 'node:crypto'
import { SNAPSHOT_CHECKSUM_BYTES, snapshotByteLength, writeSnapshotHeader } from './snapshot-format.js'
import { SnapshotError, type TrainingSnapshot } from './snapshot-types.js'

export const DEFAULT_CHUNK_BYTES = 1024 * 1024

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

export interface EncodedSnapshot {
  /** exact number of bytes the chunks add up to */
  readonly byteLength: number
  /** may be iterated once */
  readonly chunks: Iterable<Uint8Array>
}

function checkCount (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SnapshotError('invalid-snapshot', `snapshot ${name} must be a non-negative integer, got ${value}`)
  }
}

/** The UTF-8 JSON part of `snapshot`, after checking its fields (SnapshotError('invalid-snapshot')). */
export function encodeJsonPart (snapshot: TrainingSnapshot): Uint8Array {
  checkCount('step', snapshot.step)
  checkCount('epoch', snapshot.epoch)
  checkCount('cursor', snapshot.cursor)
  if (snapshot.meta === null || typeof snapshot.meta !== 'object' || Array.isArray(snapshot.meta)) {
    throw new SnapshotError('invalid-snapshot', 'snapshot meta must be a plain JSON object')
  }
  if (!(snapshot.params instanceof Float32Array) || !(snapshot.optimizerState instanceof Float32Array)) {
    throw new SnapshotError('invalid-snapshot', 'snapshot params and optimizerState must be Float32Arrays')
  }
  let json: string
  try {
    json = JSON.stringify({ jobConfig: snapshot.jobConfig ?? null, step: snapshot.step, epoch: snapshot.epoch, cursor: snapshot.cursor, meta: snapshot.meta })
  } catch (error) {
    throw new SnapshotError('invalid-snapshot', `snapshot jobConfig/meta is not JSON-serialisable: ${(error as Error).message}`)
  }
  return new TextEncoder().encode(json)
}

/** `values` as little-endian bytes in chunks of at most `chunkBytes` (views on little-endian hosts). */
export function * floatChunks (values: Float32Array, chunkBytes: number): Generator<Uint8Array> {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
  for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes) {
    const end = Math.min(offset + chunkBytes, bytes.byteLength)
    if (LITTLE_ENDIAN_HOST) {
      yield bytes.subarray(offset, end)
    } else {
      const out = new Uint8Array(end - offset)
      const view = new DataView(out.buffer)
      for (let i = 0; i < out.byteLength; i += 4) view.setFloat32(i, values[(offset + i) / 4], true)
      yield out
    }
  }
}

/**
 * Prepare the encoding of `snapshot`. Validation errors (SnapshotError) are thrown here, before any
 * byte is produced. `chunkBytes` must be a positive multiple of 4 (default 1 MiB); `checksum`
 * (default true) false leaves the sha256 trailer out, for transports that authenticate the bytes.
 */
export function encodeSnapshot (snapshot: TrainingSnapshot, options: { chunkBytes?: number, checksum?: boolean } = {}): EncodedSnapshot {
  const checksum = options.checksum ?? true
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes % 4 !== 0) {
    throw new SnapshotError('invalid-snapshot', `chunkBytes must be a positive multiple of 4, got ${chunkBytes}`)
  }
  const json = encodeJsonPart(snapshot)
  const sizes = { jsonLength: json.byteLength, paramCount: snapshot.params.length, optimizerCount: snapshot.optimizerState.length, checksum }
  const header = writeSnapshotHeader(sizes)
  const byteLength = snapshotByteLength(sizes)

  function * chunks (): Generator<Uint8Array> {
    const hash = createHash('sha256')
    const head = new Uint8Array(header.byteLength + json.byteLength)
    head.set(header, 0)
    head.set(json, header.byteLength)
    if (checksum) hash.update(head)
    yield head
    for (const block of [snapshot.params, snapshot.optimizerState]) {
      for (const chunk of floatChunks(block, chunkBytes)) {
        if (checksum) hash.update(chunk)
        yield chunk
      }
    }
    if (!checksum) return
    const digest = new Uint8Array(hash.digest())
    if (digest.byteLength !== SNAPSHOT_CHECKSUM_BYTES) throw new Error('sha256 digest has an unexpected length')
    yield digest
  }

  return { byteLength, chunks: chunks() }
}

/** Convenience for small snapshots and tests: the whole encoding in one buffer. */
export function encodeSnapshotToBytes (snapshot: TrainingSnapshot): Uint8Array {
  const encoded = encodeSnapshot(snapshot)
  const out = new Uint8Array(encoded.byteLength)
  let offset = 0
  for (const chunk of encoded.chunks) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}
