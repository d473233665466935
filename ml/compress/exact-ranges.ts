/**
 * Ranges of the flat vector that must travel exactly: BatchNorm's batch statistics, which ride
 * in the buffers' gradient slots (see ml/optim/running-buffers.ts). Quantized with the gradient,
 * they would share qsgd's buckets with gradient values, so a bucket's norm would be set by a
 * running variance (~1) and the gradients beside it (~1e-3) would round to zero or to one level;
 * the statistics themselves would be off by up to a level too.
 *
 * Payload: the inner codec's encoding of every value outside the ranges (in vector order), then
 * the range values as little-endian float32 (in range order). A vector without ranges uses the
 * inner codec as it is.
 */
import { CodecError, checkCount, checkLength, encodeOutput, type GradientCodec } from './codec.js'

/** a run of `size` values starting at element `offset` (a ParameterSpec has both) */
export interface ExactRange {
  readonly offset: number
  readonly size: number
}

/** decode may fill a caller's buffer (the qsgd codec's `into`) */
export interface ExactRangesCodec extends GradientCodec {
  decode(bytes: Uint8Array, count: number, into?: Float32Array): Float32Array
}

/**
 * Wraps `inner` so the values in `ranges` (non-overlapping, any order) bypass it. Encoding a
 * vector that the ranges do not fit, or decoding for such a count, throws CodecError 'count'.
 */
export function withExactRanges(inner: GradientCodec, ranges: readonly ExactRange[]): ExactRangesCodec {
  const sorted = [...ranges].filter((r) => r.size > 0).sort((a, b) => a.offset - b.offset)
  if (sorted.length === 0) return inner
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].size) throw new Error(`exact ranges overlap at element ${sorted[i].offset}`)
  }
  const exactCount = sorted.reduce((sum, r) => sum + r.size, 0)
  const end = sorted[sorted.length - 1].offset + sorted[sorted.length - 1].size
  const checkFits = (count: number): void => {
    checkCount(inner.id, count)
    if (count < end) throw new CodecError('count', `${inner.id}: ${count} values cannot hold the model's running statistics (they end at element ${end}): the sender runs another model`)
  }
  const encodedSize = (count: number): number => {
    checkFits(count)
    return inner.encodedSize(count - exactCount) + 4 * exactCount
  }
  // one scratch vector for the values outside the ranges, reused by every encode and decode
  // (both synchronous, and nothing keeps it past the call): no allocation of the gradient's size
  let scratch = new Float32Array(0)
  const restBuffer = (length: number): Float32Array => {
    if (scratch.length !== length) scratch = new Float32Array(length)
    return scratch
  }
  /** visits each run of values outside the ranges: its start in the vector, its start in the packed rest, its length */
  const gaps = (count: number, visit: (vectorStart: number, packedStart: number, length: number) => void): void => {
    let cursor = 0
    let packed = 0
    for (const r of sorted) {
      visit(cursor, packed, r.offset - cursor)
      packed += r.offset - cursor
      cursor = r.offset + r.size
    }
    visit(cursor, packed, count - cursor)
  }

  return {
    id: inner.id,
    encodedSize,
    encode(values, rng, into) {
      checkFits(values.length)
      const rest = restBuffer(values.length - exactCount)
      gaps(values.length, (at, packed, length) => rest.set(values.subarray(at, at + length), packed))
      // the inner codec writes its part at the start of `into`; the exact values follow it
      const head = inner.encode(rest, rng, into)
      const out = into !== undefined ? encodeOutput(inner.id, head.length + 4 * exactCount, into, false) : new Uint8Array(head.length + 4 * exactCount)
      if (into === undefined) out.set(head)
      const view = new DataView(out.buffer, out.byteOffset + head.length, 4 * exactCount)
      let k = 0
      for (const r of sorted) {
        for (let i = 0; i < r.size; i++) {
          const v = values[r.offset + i]
          if (v - v !== 0) throw new CodecError('non-finite', `${inner.id}: cannot encode non-finite running statistic ${v} at index ${r.offset + i}`)
          view.setFloat32(4 * k++, v, true)
        }
      }
      return out
    },
    decode(bytes, count, into) {
      const total = encodedSize(count)
      checkLength(inner.id, bytes, total, count)
      const headLength = total - 4 * exactCount
      // a codec that decodes into a caller's buffer (qsgd) reuses ours; the values are copied out below
      const rest = (inner as ExactRangesCodec).decode(bytes.subarray(0, headLength), count - exactCount, restBuffer(count - exactCount))
      const out = into !== undefined && into.length === count ? into : new Float32Array(count)
      gaps(count, (at, packed, length) => out.set(rest.subarray(packed, packed + length), at))
      const view = new DataView(bytes.buffer, bytes.byteOffset + headLength, 4 * exactCount)
      let k = 0
      for (const r of sorted) {
        for (let i = 0; i < r.size; i++) {
          const v = view.getFloat32(4 * k++, true)
          if (v - v !== 0) throw new CodecError('non-finite', `${inner.id}: running statistic ${r.offset + i} is ${v}; the sender's statistics are not finite`)
          out[r.offset + i] = v
        }
      }
      return out
    }
  }
}
