/**
 * One range of a snapshot's float values, so a joiner can fetch the state in pieces from several
 * members that hold the same parameters. The values are the parameters followed by the optimizer
 * state (one vector of paramCount + optimizerCount floats); range `index` of `count` is a
 * contiguous, near-equal part of it (`floatRange`). Encoded as a snapshot header (real counts,
 * no trailer), the JSON part, then the range's floats only:
 *
 *   header (32 bytes, snapshot-format.ts) | JSON | floats [start, end) little-endian
 *
 * Integrity: a range carries no checksum; the reassembled floats are checked against the state
 * digest the donors announce (`stateDigest`, fetch-from-donors.ts).
 */
import { createHash } from 'node:crypto'
import { SNAPSHOT_HEADER_BYTES, readSnapshotHeader, writeSnapshotHeader, type SnapshotHeader } from './snapshot-format.js'
import { DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_SNAPSHOT_BYTES, parseJsonPart, type SnapshotChunk, type SnapshotJsonPart } from './decode-snapshot.js'
import { encodeJsonPart, floatChunks, type EncodedSnapshot } from './encode-snapshot.js'
import { SnapshotError, type TrainingSnapshot } from './snapshot-types.js'

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/**
 * sha256 (hex) of the parameters' bytes followed by the optimizer state's: what every honest
 * member holds bit-identically at the start of a step in a synchronous job, so donors of one
 * state announce one digest. (The parameter digest alone would leave the optimizer state, half
 * or two thirds of the floats, unchecked.)
 */
export function stateDigest (params: Float32Array, optimizerState: Float32Array): string {
  const hash = createHash('sha256')
  hash.update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength))
  hash.update(new Uint8Array(optimizerState.buffer, optimizerState.byteOffset, optimizerState.byteLength))
  return hash.digest('hex')
}

/** [start, end) in floats of the concatenated parameters + optimizer state */
export interface FloatRange {
  readonly start: number
  readonly end: number
}

/**
 * Part `index` of `count` near-equal contiguous parts of `total` floats (the first `total % count`
 * parts one float longer). Throws RangeError for an index outside [0, count).
 */
export function floatRange (total: number, index: number, count: number): FloatRange {
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`range ${index} of ${count} does not exist`)
  }
  const base = Math.floor(total / count)
  const extra = total % count
  const start = index * base + Math.min(index, extra)
  return { start, end: start + base + (index < extra ? 1 : 0) }
}

/** Encoded size of range `range` of `snapshot` (its JSON part encoded once by the caller). */
function rangeByteLength (jsonLength: number, range: FloatRange): number {
  return SNAPSHOT_HEADER_BYTES + jsonLength + 4 * (range.end - range.start)
}

/**
 * Encode part `index` of `count` of `snapshot` (see the file comment). The chunks view the
 * caller's arrays without copying on little-endian hosts: they must not change until iterated.
 */
export function encodeSnapshotRange (snapshot: TrainingSnapshot, index: number, count: number, chunkBytes: number): EncodedSnapshot & { readonly range: FloatRange } {
  const json = encodeJsonPart(snapshot)
  const paramCount = snapshot.params.length
  const optimizerCount = snapshot.optimizerState.length
  const range = floatRange(paramCount + optimizerCount, index, count)
  const header = writeSnapshotHeader({ jsonLength: json.byteLength, paramCount, optimizerCount, checksum: false })

  function * chunks (): Generator<Uint8Array> {
    const head = new Uint8Array(header.byteLength + json.byteLength)
    head.set(header, 0)
    head.set(json, header.byteLength)
    yield head
    const paramEnd = Math.min(range.end, paramCount)
    if (range.start < paramEnd) yield * floatChunks(snapshot.params.subarray(range.start, paramEnd), chunkBytes)
    const optStart = Math.max(range.start, paramCount)
    if (optStart < range.end) yield * floatChunks(snapshot.optimizerState.subarray(optStart - paramCount, range.end - paramCount), chunkBytes)
  }

  return { byteLength: rangeByteLength(json.byteLength, range), chunks: chunks(), range }
}

/** A decoded range: the snapshot's counts and JSON part, and its floats [start, end). */
export interface SnapshotRange {
  readonly paramCount: number
  readonly optimizerCount: number
  readonly json: SnapshotJsonPart
  readonly range: FloatRange
  readonly values: Float32Array
}

export interface SnapshotRangeDecoder {
  /** Feed the next bytes; throws SnapshotError as soon as the data is known to be bad. */
  push(chunk: SnapshotChunk): void
  /** Check completeness; returns the range. */
  finish(): SnapshotRange
  readonly received: number
  /** total size, once the header has arrived */
  readonly expectedBytes: number | undefined
}

/**
 * Incremental decoder of one range whose bounds the server announced (`range`); the header's
 * counts must contain it. Sizes beyond `maxBytes` (whole snapshot) are refused before allocation.
 */
export function createSnapshotRangeDecoder (range: FloatRange, options: { maxBytes?: number, maxJsonBytes?: number } = {}): SnapshotRangeDecoder {
  const limits = { maxBytes: options.maxBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES, maxJsonBytes: options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES }
  if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start) {
    throw new SnapshotError('bad-header', `range [${range.start}, ${range.end}) is not a range of floats`)
  }
  const headerBytes = new Uint8Array(SNAPSHOT_HEADER_BYTES)
  let header: SnapshotHeader | undefined
  let json: Uint8Array | undefined
  let jsonPart: SnapshotJsonPart | undefined
  let values: Float32Array | undefined
  let valueBytes: Uint8Array | undefined
  let received = 0

  const total = (): number | undefined => header === undefined ? undefined : rangeByteLength(header.jsonLength, range)

  function onHeader (): void {
    header = readSnapshotHeader(headerBytes, limits)
    if (header.checksum) throw new SnapshotError('bad-header', 'a snapshot range carries no sha256 trailer, but its header announces one')
    if (range.end > header.paramCount + header.optimizerCount) {
      throw new SnapshotError('bad-header', `range [${range.start}, ${range.end}) lies beyond the snapshot's ${header.paramCount + header.optimizerCount} floats`)
    }
    json = new Uint8Array(header.jsonLength)
    values = new Float32Array(range.end - range.start)
    valueBytes = new Uint8Array(values.buffer)
  }

  function pushBytes (bytes: Uint8Array): void {
    let consumed = 0
    while (consumed < bytes.byteLength) {
      let target: Uint8Array
      let offset: number
      if (received < SNAPSHOT_HEADER_BYTES) {
        target = headerBytes
        offset = received
      } else if (json !== undefined && received < SNAPSHOT_HEADER_BYTES + json.byteLength) {
        target = json
        offset = received - SNAPSHOT_HEADER_BYTES
      } else if (json !== undefined && valueBytes !== undefined && received < (total() as number)) {
        target = valueBytes
        offset = received - SNAPSHOT_HEADER_BYTES - json.byteLength
      } else {
        throw new SnapshotError('trailing-bytes', `snapshot range continues past its announced end of ${total() ?? SNAPSHOT_HEADER_BYTES} bytes`)
      }
      const n = Math.min(target.byteLength - offset, bytes.byteLength - consumed)
      target.set(bytes.subarray(consumed, consumed + n), offset)
      consumed += n
      received += n
      if (received === SNAPSHOT_HEADER_BYTES && header === undefined) onHeader()
      if (json !== undefined && jsonPart === undefined && received === SNAPSHOT_HEADER_BYTES + json.byteLength) jsonPart = parseJsonPart(json)
    }
  }

  return {
    get received () { return received },
    get expectedBytes () { return total() },
    push (chunk) {
      if (chunk instanceof Uint8Array) pushBytes(chunk)
      else for (const part of chunk) pushBytes(part)
    },
    finish () {
      const expected = total()
      if (header === undefined || jsonPart === undefined || values === undefined || expected === undefined || received < expected) {
        throw new SnapshotError('truncated', `snapshot range ended after ${received} bytes, expected ${expected ?? `at least ${SNAPSHOT_HEADER_BYTES}`}`)
      }
      if (!LITTLE_ENDIAN_HOST) {
        const view = new DataView(values.buffer)
        for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(4 * i, true)
      }
      return { paramCount: header.paramCount, optimizerCount: header.optimizerCount, json: jsonPart, range, values }
    }
  }
}

/**
 * Put ranges that tile [0, paramCount + optimizerCount) together into one snapshot, its JSON part
 * from `ranges[0]`. Throws SnapshotError('invalid-snapshot') when the ranges disagree on the
 * counts or do not tile the whole vector exactly once.
 */
export function assembleSnapshotRanges (ranges: readonly SnapshotRange[]): TrainingSnapshot {
  const first = ranges[0]
  if (first === undefined) throw new SnapshotError('invalid-snapshot', 'no ranges to assemble')
  const { paramCount, optimizerCount } = first
  const sorted = [...ranges].sort((a, b) => a.range.start - b.range.start)
  let next = 0
  for (const r of sorted) {
    if (r.paramCount !== paramCount || r.optimizerCount !== optimizerCount) {
      throw new SnapshotError('invalid-snapshot', `ranges disagree on the state's size: ${paramCount} + ${optimizerCount} floats against ${r.paramCount} + ${r.optimizerCount}`)
    }
    if (r.range.start !== next) throw new SnapshotError('invalid-snapshot', `ranges leave a gap or overlap at float ${next}`)
    next = r.range.end
  }
  if (next !== paramCount + optimizerCount) throw new SnapshotError('invalid-snapshot', `ranges end at float ${next} of ${paramCount + optimizerCount}`)
  const params = new Float32Array(paramCount)
  const optimizerState = new Float32Array(optimizerCount)
  for (const r of sorted) {
    const paramEnd = Math.min(r.range.end, paramCount)
    if (r.range.start < paramEnd) params.set(r.values.subarray(0, paramEnd - r.range.start), r.range.start)
    const optStart = Math.max(r.range.start, paramCount)
    if (optStart < r.range.end) optimizerState.set(r.values.subarray(optStart - r.range.start), optStart - paramCount)
  }
  const { jobConfig, step, epoch, cursor, meta } = first.json
  return { jobConfig, step, epoch, cursor, meta, params, optimizerState }
}
