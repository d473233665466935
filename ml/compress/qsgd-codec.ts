/**
 * QSGD (Alistarh et al. 2017), stochastic and unbiased, densely bit-packed.
 *
 * The vector is cut into buckets of `bucketSize` coordinates. Per bucket we store its L2 norm
 * (float32) and per coordinate a sign and a level l in [0, s], s = 2^(bits-1) - 1, with
 * l = floor(|v_i| / norm * s) + Bernoulli(frac), so E[decode(encode(v))] = v.
 *
 * Layout: [norm of bucket 0..B-1: float32 LE][codes: `bits` bits per coordinate, packed
 * low bits first, the last byte zero-padded]. A code is (sign << (bits-1)) | level; zero is
 * always written with sign 0, so every vector has one encoding per random draw and
 * the decoder rejects "-0" codes, non-zero padding and codes under a zero norm.
 * Sizes for 8 bits, bucket 512: 1 + 4/512 bytes per value, 0.252x of float32.
 */
import type { Rng } from '../core/rng.js'
import { CodecError, checkCount, checkFiniteInput, checkLength, encodeOutput, type GradientCodec } from './codec.js'
import { createQsgdKernel, type QsgdKernel } from './qsgd-simd.js'

export type QsgdBits = 2 | 4 | 8

export interface QsgdOptions {
  readonly bits: QsgdBits
  readonly bucketSize: number
  /** false: the scalar 8-bit loop even where the SIMD kernel runs (the same codes; tests compare them) */
  readonly simd?: boolean
}

/** The qsgd codec; its decode can also fill a caller's buffer. */
export interface QsgdCodec extends GradientCodec {
  decode (bytes: Uint8Array, count: number, into?: Float32Array): Float32Array
}

export function createQsgdCodec (options: QsgdOptions): QsgdCodec {
  const { bits, bucketSize } = options
  const levels = (1 << (bits - 1)) - 1
  const signBit = 1 << (bits - 1)
  const codeMask = (1 << bits) - 1
  // code -> its signed level (decode multiplies by the bucket's norm / levels); "-0" is refused before use
  const signedLevels = new Float64Array(1 << bits)
  for (let code = 0; code <= codeMask; code++) {
    const level = code & levels
    signedLevels[code] = (code & signBit) !== 0 ? -level : level
  }
  /** codes a byte holds (sub-byte widths), and whether one of them is the refused "-0" (the sign bit alone) */
  const perByte = 8 / bits
  const negativeZeroIn = Uint8Array.from({ length: 256 }, (_, byte) => {
    let found = 0
    for (let k = 0; k < perByte; k++) found |= +(((byte >>> (k * bits)) & codeMask) === signBit)
    return found
  })
  const nonCanonicalCode = (code: number, i: number, bucket: number): CodecError => code === signBit
    ? new CodecError('non-canonical', `qsgd: value ${i} is encoded as negative zero; zero must be written with sign 0 (corrupt or forged payload)`)
    : new CodecError('non-canonical', `qsgd: value ${i} has level ${code & levels} in bucket ${bucket} whose norm is 0 (corrupt or forged payload)`)

  // the encoder's loop and the decoder as a SIMD kernel (the same codes and floats; 32 / bits values
  // an encode iteration, so buckets of a multiple of that); undefined where WebAssembly SIMD is missing
  const iteration = 32 / bits
  const kernel = bucketSize % iteration === 0 && options.simd !== false ? tryKernel(bits) : undefined
  /** values per window: whole buckets, 64 Ki values or one bucket (320 KiB of kernel memory) */
  const windowValues = bucketSize * Math.max(1, Math.floor(65536 / bucketSize))
  const bucketCount = (count: number): number => Math.ceil(count / bucketSize)
  const codeBytes = (count: number): number => Math.ceil((count * bits) / 8)
  const encodedSize = (count: number): number => {
    checkCount('qsgd', count)
    return 4 * bucketCount(count) + codeBytes(count)
  }

  return {
    id: 'qsgd',
    encodedSize,

    encode (values: Float32Array, rng: Rng, into?: Uint8Array): Uint8Array {
      const count = values.length
      const buckets = bucketCount(count)
      // the kernel writes every byte (codes window by window, zeros for all-zero buckets); the
      // scalar paths skip all-zero buckets and OR sub-byte codes in: a reused buffer is zeroed
      const out = encodeOutput('qsgd', encodedSize(count), into, kernel === undefined)
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
      const codeOffset = 4 * buckets
      // the caller's rng seeds a fast inline generator, so the encoding is reproducible from it
      let state = rng.nextUint32() | 0
      // the SIMD kernel takes the vector a window of whole buckets at a time (its memory holds one)
      let windowStart = 0
      let windowEnd = 0
      const flushWindow = (): void => { if (kernel !== undefined && windowEnd > windowStart) out.set(kernel.codes(), codeOffset + (windowStart * bits) / 8) }

      for (let b = 0; b < buckets; b++) {
        const start = b * bucketSize
        const end = Math.min(start + bucketSize, count)
        if (kernel !== undefined && start >= windowEnd) {
          flushWindow()
          windowStart = start
          windowEnd = Math.min(count, start + windowValues)
          kernel.load(values.subarray(windowStart, windowEnd))
        }
        const sumSq = kernel !== undefined && ((end - start) & 1) === 0
          ? kernel.sumOfSquares(start - windowStart, end - windowStart)
          : sumOfSquares(values, start, end)
        // a NaN or infinite value makes the sum so (one pass instead of a check of its own first)
        if (sumSq - sumSq !== 0) checkFiniteInput('qsgd', values.subarray(start, end), start)
        const norm = Math.fround(Math.sqrt(sumSq))
        if (norm === Infinity) {
          throw new CodecError('overflow', `qsgd: the L2 norm of bucket ${b} (values ${start}..${end - 1}) overflows float32; the gradient exploded (lower the learning rate or clip gradients)`)
        }
        view.setFloat32(4 * b, norm, true)
        if (norm === 0) {
          kernel?.codes().fill(0, ((start - windowStart) * bits) / 8, Math.ceil(((end - windowStart) * bits) / 8)) // the memory holds earlier codes
          continue // all-zero bucket: codes stay 0
        }

        // quantize against the stored (float32) norm, so decode scales by exactly what was used here
        const scale = levels / norm
        if (kernel !== undefined) {
          const whole = end - ((end - start) % iteration)
          state = kernel.encode(start - windowStart, whole - windowStart, scale, state)
          // the last bucket's last values, into the window's codes like the others (only there:
          // codes() makes a view, and one per bucket cost a fifth of a lenet5 encode)
          if (whole < end) {
            const codes = kernel.codes()
            if (bits === 8) {
              state = encodeBucket8(values, whole, end, scale, state, codes, -windowStart)
            } else {
              // ORed in: clear what an earlier window left there first (whole starts on a byte)
              codes.fill(0, ((whole - windowStart) * bits) / 8)
              state = encodeBucketBits(values, whole, end, scale, state, codes, -(windowStart * bits) / 8, bits)
            }
          }
          continue
        }
        state = bits === 8
          ? encodeBucket8(values, start, end, scale, state, out, codeOffset)
          : encodeBucketBits(values, start, end, scale, state, out, codeOffset, bits)
      }
      flushWindow()
      return out
    },

    /**
     * `into` (optional, `count` values): decode into this buffer instead of a new one, e.g. a
     * buffer reused every step (a fresh one's allocation and page faults cost more than the
     * decoding). Buckets of a multiple of 32 / bits values decode in the SIMD kernel where it
     * compiles (qsgd-simd.ts; into a reused buffer, mlp-large: 8 bits 6.5-7.0 GB/s, 4 and 2 bits
     * 5.0-5.5); other bucket sizes at 2 and 4 bits a code byte at a time where the bucket starts on
     * a byte (4 bits: mlp-large 1.2-2.1 GB/s). Returns the decoded values (`into` when given).
     */
    decode (bytes: Uint8Array, count: number, into?: Float32Array): Float32Array {
      const expected = encodedSize(count)
      checkLength('qsgd', bytes, expected, count)
      const buckets = bucketCount(count)
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      const codeOffset = 4 * buckets
      if (into !== undefined && into.length !== count) throw new RangeError(`qsgd: decode into a buffer of ${into.length} values, expected ${count}`)
      const out = into ?? new Float32Array(count)
      const codeAt = (i: number): number => {
        const bitPos = i * bits
        return (bytes[codeOffset + (bitPos >>> 3)] >>> (bitPos & 7)) & codeMask
      }
      // the SIMD kernel decodes a window of whole buckets at a time into its memory
      let windowStart = 0
      let windowEnd = 0
      const flushWindow = (): void => { if (kernel !== undefined && windowEnd > windowStart) out.set(kernel.values(), windowStart) }

      for (let b = 0; b < buckets; b++) {
        const norm = view.getFloat32(4 * b, true)
        if (!(norm >= 0) || norm === Infinity || (norm === 0 && 1 / norm < 0)) {
          throw new CodecError(norm - norm !== 0 ? 'non-finite' : 'non-canonical', `qsgd: bucket ${b} has norm ${Object.is(norm, -0) ? '-0' : norm}; a norm must be finite and non-negative (corrupt or forged payload)`)
        }
        const start = b * bucketSize
        const end = Math.min(start + bucketSize, count)
        if (norm === 0) {
          for (let i = start; i < end; i++) {
            const code = codeAt(i)
            if (code !== 0) throw nonCanonicalCode(code, i, b)
          }
          if (kernel !== undefined && start < windowEnd) kernel.values().fill(0, start - windowStart, end - windowStart)
          else if (into !== undefined) out.fill(0, start, end)
          continue // the values stay 0
        }
        // one multiply per value, no branches: the hot loop of every receive
        const step = norm / levels
        let negativeZeros = 0
        if (kernel !== undefined) {
          if (start >= windowEnd) {
            flushWindow()
            windowStart = start
            windowEnd = Math.min(count, start + windowValues)
            // a window starts a bucket, so on a byte (buckets hold a multiple of 32 / bits values)
            kernel.loadCodes(bytes.subarray(codeOffset + (windowStart * bits) / 8, codeOffset + codeBytes(windowEnd)), windowEnd - windowStart)
          }
          const whole = start + ((end - start) & ~3)
          negativeZeros |= +kernel.decode(start - windowStart, whole - windowStart, step)
          // the last bucket's last n % 4 values
          const window = kernel.values()
          for (let i = whole; i < end; i++) {
            const code = codeAt(i)
            negativeZeros |= +(code === signBit)
            window[i - windowStart] = signedLevels[code] * step
          }
        } else if (bits === 8) {
          for (let i = start, p = codeOffset + start; i < end; i++, p++) {
            const code = bytes[p]
            negativeZeros |= +(code === signBit)
            out[i] = signedLevels[code] * step
          }
        } else if (start % perByte === 0) {
          // a byte at a time (the bucket starts on a byte): its codes by shifts, no call per value;
          // a table says whether the byte holds the refused -0
          let i = start
          let p = codeOffset + start / perByte
          // whole bytes unrolled (two or four codes), then the bucket's last codes
          const wholeEnd = start + (end - start) - ((end - start) % perByte)
          if (perByte === 2) {
            for (; i < wholeEnd; i += 2, p++) {
              const byte = bytes[p]
              negativeZeros |= negativeZeroIn[byte]
              out[i] = signedLevels[byte & 15] * step
              out[i + 1] = signedLevels[byte >>> 4] * step
            }
          } else {
            for (; i < wholeEnd; i += 4, p++) {
              const byte = bytes[p]
              negativeZeros |= negativeZeroIn[byte]
              out[i] = signedLevels[byte & 3] * step
              out[i + 1] = signedLevels[(byte >>> 2) & 3] * step
              out[i + 2] = signedLevels[(byte >>> 4) & 3] * step
              out[i + 3] = signedLevels[byte >>> 6] * step
            }
          }
          if (i < end) {
            for (let byte = bytes[p]; i < end; i++, byte >>>= bits) {
              negativeZeros |= +((byte & codeMask) === signBit)
              out[i] = signedLevels[byte & codeMask] * step
            }
          }
        } else {
          for (let i = start; i < end; i++) {
            const code = codeAt(i)
            negativeZeros |= +(code === signBit)
            out[i] = signedLevels[code] * step
          }
        }
        if (negativeZeros !== 0) {
          for (let i = start; i < end; i++) if (codeAt(i) === signBit) throw nonCanonicalCode(signBit, i, b)
        }
      }

      flushWindow()
      const usedBits = count * bits
      if ((usedBits & 7) !== 0 && (bytes[expected - 1] >>> (usedBits & 7)) !== 0) {
        throw new CodecError('non-canonical', 'qsgd: padding bits after the last value are not zero (corrupt or forged payload)')
      }
      return out
    }
  }
}

/**
 * One bucket at 2 or 4 bits: each code ORed into its byte at bit i * bits of `out` from
 * `codeOffset` (which must hold zeros there). Returns the generator's state after the bucket.
 */
function encodeBucketBits (values: Float32Array, start: number, end: number, scale: number, state: number, out: Uint8Array, codeOffset: number, bits: number): number {
  const levels = (1 << (bits - 1)) - 1
  const signBit = 1 << (bits - 1)
  for (let i = start; i < end; i++) {
    const v = values[i]
    const scaled = Math.abs(v) * scale
    const a = scaled > levels ? levels : scaled // |v| can exceed the rounded norm by an ulp
    let level = a | 0 // floor: 0 <= a <= levels
    // splitmix32 (inlined: ~10x cheaper than a call per value); P(z < frac * 2^32) = frac
    state = (state + 0x9e3779b9) | 0
    let z = Math.imul(state ^ (state >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    z = (z ^ (z >>> 16)) >>> 0
    // written without data-dependent branches: they mispredicted half the time (2x slower)
    level += +(z < (a - level) * 4294967296)
    // the sign only where the level is not 0 (zero has one encoding); branch-free as well
    const code = level | (signBit * (+(v < 0) & +(level !== 0)))
    const bitPos = i * bits
    out[codeOffset + (bitPos >>> 3)] |= code << (bitPos & 7)
  }
  return state
}

/**
 * One bucket at 8 bits: the loop of encode() with a byte per code (no shifts, no OR into a
 * shared byte) and the level bound and sign as constants; the same draws and codes. Returns
 * the generator's state after the bucket.
 */
function encodeBucket8 (values: Float32Array, start: number, end: number, scale: number, state: number, out: Uint8Array, codeOffset: number): number {
  for (let i = start; i < end; i++) {
    const v = values[i]
    const scaled = Math.abs(v) * scale
    const a = scaled > 127 ? 127 : scaled
    let level = a | 0
    state = (state + 0x9e3779b9) | 0
    let z = Math.imul(state ^ (state >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    z = (z ^ (z >>> 16)) >>> 0
    level += +(z < (a - level) * 4294967296)
    out[codeOffset + i] = level | (128 * (+(v < 0) & +(level !== 0)))
  }
  return state
}

function tryKernel (bits: QsgdBits): QsgdKernel | undefined {
  try {
    return createQsgdKernel(bits)
  } catch {
    return undefined
  }
}

/**
 * A bucket's sum of squares in float64: values at even and at odd positions from `start` summed
 * apart, in order, then added (the two lanes of the SIMD kernel, which computes the same bits).
 */
export function sumOfSquares (values: Float32Array, start: number, end: number): number {
  let even = 0
  let odd = 0
  let i = start
  for (; i + 1 < end; i += 2) {
    even += values[i] * values[i]
    odd += values[i + 1] * values[i + 1]
  }
  if (i < end) even += values[i] * values[i]
  return even + odd
}
