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
 *
 * Whole buckets (of a multiple of 8 values) run in WebAssembly SIMD kernels (fp16-simd.ts), which
 * give the scalar loops' bytes and floats: on a Zen 5, mlp-large's 1.86 M values encode at ~1.8
 * GB/s and decode at ~4.5 GB/s, where the scalar loops ran ~0.33 and ~0.23.
 */
import { CodecError, checkCount, checkFiniteInput, checkLength, encodeOutput, type GradientCodec } from './codec.js'
import { FLOAT16_TABLE, float32ToFloat16Bits } from './float16.js'
import { createFp16Kernel, type Fp16Kernel } from './fp16-simd.js'

export const FP16_WIRE_VERSION = 2
/** codes are the values scaled so that the bucket's largest magnitude becomes 2^15 */
const CODE_RANGE = 32768
/** the half bit pattern of 2^15; anything with a larger magnitude is not a valid code */
const MAX_CODE_BITS = 0x7800
/** values the SIMD kernel takes a call (whole buckets; its memory holds one such window) */
const WINDOW_VALUES = 65536

export interface Fp16Options {
  /** values sharing one scale (default 512, the job's compression.bucketSize) */
  readonly bucketSize?: number
  /** false: the scalar loops even where the SIMD kernel runs (the same bits; tests compare them) */
  readonly simd?: boolean
}

/** The fp16 codec; its decode can also fill a caller's buffer. */
export interface Fp16Codec extends GradientCodec {
  decode (bytes: Uint8Array, count: number, into?: Float32Array): Float32Array
}

export function createFp16Codec (options: Fp16Options = {}): Fp16Codec {
  const bucketSize = options.bucketSize ?? 512
  if (!Number.isSafeInteger(bucketSize) || bucketSize < 1) throw new RangeError(`fp16: bucketSize must be a positive integer, got ${bucketSize}`)
  const buckets = (count: number): number => Math.ceil(count / bucketSize)
  const encodedSize = (count: number): number => {
    checkCount('fp16', count)
    return 1 + 4 * buckets(count) + 2 * count
  }
  // the whole buckets run in the SIMD kernel (fp16-simd.ts: the same bits) where it compiles
  const kernel = bucketSize % 8 === 0 && options.simd !== false ? tryKernel() : undefined
  const windowValues = bucketSize * Math.max(1, Math.floor(WINDOW_VALUES / bucketSize))
  /** values the kernel takes: the whole buckets (a last partial one runs the scalar loop) */
  const kernelValues = (count: number): number => kernel === undefined ? 0 : count - (count % bucketSize)
  return {
    id: 'fp16',
    encodedSize,
    encode (values, _rng, into) {
      const count = values.length
      // every byte is written: the scales, and the codes (+0 for an all-zero bucket)
      const out = encodeOutput('fp16', encodedSize(count), into, false)
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
      out[0] = FP16_WIRE_VERSION
      const codes = 1 + 4 * buckets(count)
      const whole = kernelValues(count)
      for (let w = 0; w < whole; w += windowValues) {
        const n = Math.min(windowValues, whole - w)
        kernel!.reserve(n)
        kernel!.values().set(values.subarray(w, w + n))
        // a NaN or Inf makes its bucket's scale so: refused, naming the first
        if (!kernel!.encode(bucketSize)) checkFiniteInput('fp16', values.subarray(w, w + n), w)
        const scales = kernel!.scales()
        out.set(new Uint8Array(scales.buffer, scales.byteOffset, 4 * (n / bucketSize)), 1 + 4 * (w / bucketSize))
        const windowCodes = kernel!.codes()
        out.set(new Uint8Array(windowCodes.buffer, windowCodes.byteOffset, 2 * n), codes + 2 * w)
      }
      for (let start = whole; start < count; start += bucketSize) {
        encodeBucket(values, start, Math.min(count, start + bucketSize), start / bucketSize, view, out, codes)
      }
      return out
    },
    decode (bytes, count, into) {
      checkCount('fp16', count)
      checkLength('fp16', bytes, encodedSize(count), count)
      if (bytes[0] !== FP16_WIRE_VERSION) {
        throw new CodecError('version', `fp16: payload format version ${bytes[0]}, this peer reads version ${FP16_WIRE_VERSION}; every peer of a job must run the same p2pmld version`)
      }
      if (into !== undefined && into.length !== count) throw new RangeError(`fp16: decode into a buffer of ${into.length} values, expected ${count}`)
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      const scales = new Float32Array(buckets(count))
      for (let b = 0; b < scales.length; b++) {
        const max = view.getFloat32(1 + 4 * b, true)
        if (!(max >= 0 && max - max === 0) || Object.is(max, -0)) {
          throw new CodecError('non-finite', `fp16: bucket ${b} has scale ${max}; a scale must be finite and non-negative (corrupt or forged payload)`)
        }
        scales[b] = max
      }
      const out = into ?? new Float32Array(count)
      const codes = 1 + 4 * scales.length
      const whole = kernelValues(count)
      for (let w = 0; w < whole; w += windowValues) {
        const n = Math.min(windowValues, whole - w)
        const first = w / bucketSize
        kernel!.reserve(n)
        const windowCodes = kernel!.codes()
        new Uint8Array(windowCodes.buffer, windowCodes.byteOffset, 2 * n).set(bytes.subarray(codes + 2 * w, codes + 2 * (w + n)))
        kernel!.scales().set(scales.subarray(first, first + n / bucketSize))
        let valid = kernel!.decode(bucketSize)
        // an all-zero bucket may hold +0 codes only (the kernel decodes any code there to 0)
        for (let b = 0; valid && b < n / bucketSize; b++) {
          if (scales[first + b] !== 0) continue
          for (let i = b * bucketSize; i < (b + 1) * bucketSize; i++) if (windowCodes[i] !== 0) valid = false
        }
        if (!valid) {
          // the scalar loop names the first code refused
          for (let b = first; b < first + n / bucketSize; b++) decodeBucket(bytes, b * bucketSize, (b + 1) * bucketSize, b, scales[b], codes, out)
        }
        out.set(kernel!.values(), w)
      }
      for (let start = whole; start < count; start += bucketSize) {
        const b = start / bucketSize
        decodeBucket(bytes, start, Math.min(count, start + bucketSize), b, scales[b], codes, out)
      }
      return out
    }
  }
}

/**
 * Scale (the largest magnitude m) and codes of values[start, end), bucket `b`, into `out`: each
 * code the half nearest to v * 2^15 / m (the product in float64, rounded to float32 first), so
 * |code| <= 2^15 and never overflows the half range; -0 (a zero or a tiny negative value) is
 * written as +0, one encoding per vector. Refuses NaN and Inf.
 */
function encodeBucket (values: Float32Array, start: number, end: number, b: number, view: DataView, out: Uint8Array, codes: number): void {
  let max = 0
  for (let i = start; i < end; i++) max = Math.max(max, Math.abs(values[i]))
  if (max - max !== 0) checkFiniteInput('fp16', values.subarray(start, end), start)
  view.setFloat32(1 + 4 * b, max, true)
  const factor = max === 0 ? 0 : CODE_RANGE / max
  for (let i = start; i < end; i++) {
    const h = float32ToFloat16Bits(values[i] * factor)
    const canonical = h === 0x8000 ? 0 : h
    out[codes + 2 * i] = canonical & 0xff
    out[codes + 2 * i + 1] = canonical >>> 8
  }
}

/** values[start, end) of bucket `b` (its scale `max`, already checked) from their codes; refuses a code an encoder does not write */
function decodeBucket (bytes: Uint8Array, start: number, end: number, b: number, max: number, codes: number, out: Float32Array): void {
  const table = FLOAT16_TABLE
  const unit = max / CODE_RANGE
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

function tryKernel (): Fp16Kernel | undefined {
  try {
    return createFp16Kernel()
  } catch {
    return undefined
  }
}
