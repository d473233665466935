/**
 * codec 'fp16': IEEE half precision with a scale per bucket, so every finite gradient encodes
 * (a plain cast overflows past 65504 and took a peer out of training).
 *
 * Wire format, version 2 (all little-endian):
 *   [version: u8 = 2][scale of bucket 0..B-1: float32][one binary16 per value]
 * Each bucket of `bucketSize` values stores its largest magnitude m as the scale; a value v is
 * sent as the half nearest to v / m * 2^15 (so |code| <= 32768, inside the half range with
 * headroom, and small values keep 15 more binades than v / m would) and decoded as
 * code * m / 2^15. A zero bucket (m = 0) has only +0 codes. Decoding refuses another version,
 * non-finite or negative scales, Inf/NaN codes, codes beyond 2^15 and non-zero codes under a zero
 * scale. Size: 1 + 4 ceil(n / bucketSize) + 2n bytes (0.504x of float32 at bucket 512).
 * Version 1 (a bare cast, 2n bytes, no header) is no longer accepted.
 */
import { CodecError, checkCount, checkFiniteInput, checkLength, encodeOutput, type GradientCodec } from './codec.js'
import { FLOAT16_TABLE, float32ToFloat16Bits } from './float16.js'

export const FP16_WIRE_VERSION = 2
/** codes are the values scaled so that the bucket's largest magnitude becomes 2^15 */
const CODE_RANGE = 32768
/** the half bit pattern of 2^15; anything with a larger magnitude is not a valid code */
const MAX_CODE_BITS = 0x7800

export interface Fp16Options {
  /** values sharing one scale (default 512, the job's compression.bucketSize) */
  readonly bucketSize?: number
}

export function createFp16Codec (options: Fp16Options = {}): GradientCodec {
  const bucketSize = options.bucketSize ?? 512
  if (!Number.isSafeInteger(bucketSize) || bucketSize < 1) throw new RangeError(`fp16: bucketSize must be a positive integer, got ${bucketSize}`)
  const buckets = (count: number): number => Math.ceil(count / bucketSize)
  const encodedSize = (count: number): number => {
    checkCount('fp16', count)
    return 1 + 4 * buckets(count) + 2 * count
  }
  return {
    id: 'fp16',
    encodedSize,
    encode (values, _rng, into) {
      checkFiniteInput('fp16', values)
      const count = values.length
      // all-zero buckets leave their codes unwritten (+0)
      const out = encodeOutput('fp16', encodedSize(count), into, true)
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
      out[0] = FP16_WIRE_VERSION
      const codes = 1 + 4 * buckets(count)
      for (let b = 0, start = 0; start < count; b++, start += bucketSize) {
        const end = Math.min(count, start + bucketSize)
        let max = 0
        for (let i = start; i < end; i++) max = Math.max(max, Math.abs(values[i]))
        view.setFloat32(1 + 4 * b, max, true)
        if (max === 0) continue // codes stay +0
        const factor = CODE_RANGE / max
        for (let i = start; i < end; i++) {
          // |v| <= max, so the code's magnitude is at most 2^15: never overflows the half range;
          // a -0 code (also a tiny negative value's) is written as +0: one encoding per vector
          const h = float32ToFloat16Bits(values[i] * factor)
          const canonical = h === 0x8000 ? 0 : h
          out[codes + 2 * i] = canonical & 0xff
          out[codes + 2 * i + 1] = canonical >>> 8
        }
      }
      return out
    },
    decode (bytes, count) {
      checkCount('fp16', count)
      checkLength('fp16', bytes, encodedSize(count), count)
      if (bytes[0] !== FP16_WIRE_VERSION) {
        throw new CodecError('version', `fp16: payload format version ${bytes[0]}, this peer reads version ${FP16_WIRE_VERSION}; every peer of a job must run the same p2pmld version`)
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      const table = FLOAT16_TABLE
      const out = new Float32Array(count)
      const codes = 1 + 4 * buckets(count)
      for (let b = 0, start = 0; start < count; b++, start += bucketSize) {
        const max = view.getFloat32(1 + 4 * b, true)
        if (!(max >= 0 && max - max === 0) || Object.is(max, -0)) {
          throw new CodecError('non-finite', `fp16: bucket ${b} has scale ${max}; a scale must be finite and non-negative (corrupt or forged payload)`)
        }
        const unit = max / CODE_RANGE
        const end = Math.min(count, start + bucketSize)
        for (let i = start; i < end; i++) {
          const h = bytes[codes + 2 * i] | (bytes[codes + 2 * i + 1] << 8)
          if ((h & 0x7c00) === 0x7c00) {
            throw new CodecError('non-finite', `fp16: value ${i} is ${(h & 0x3ff) === 0 ? 'Inf' : 'NaN'} (bits 0x${h.toString(16)}); the sender's gradient is not finite`)
          }
          if ((h & 0x7fff) > MAX_CODE_BITS || (max === 0 && h !== 0) || h === 0x8000) {
            throw new CodecError('non-canonical', `fp16: value ${i} has code 0x${h.toString(16)}, outside what scale ${max} of bucket ${b} allows (corrupt or forged payload)`)
          }
          out[i] = table[h] * unit
        }
      }
      return out
    }
  }
}
