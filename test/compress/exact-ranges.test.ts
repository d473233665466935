/**
 * Running statistics travel exactly beside a lossy codec: what the buffers' slots decode to is
 * what was sent, bit for bit, and the gradient values around them are coded as if the
 * statistics were not there (not in buckets whose norm a running variance sets).
 */
import { describe, expect, it } from 'vitest'
import { CodecError, createCodec, createQsgdCodec, withExactRanges } from '../../ml/compress/index.js'
import { createRng } from '../../ml/core/rng.js'
import { CompressionConfigSchema } from '../../config/job-config.js'

const N = 4096
// two BatchNorm layers' running mean and variance, as a layout places them between weights
const RANGES = [{ offset: 1000, size: 64 }, { offset: 1064, size: 64 }, { offset: 3000, size: 32 }]
const inRange = (i: number): boolean => RANGES.some((r) => i >= r.offset && i < r.offset + r.size)

/** gradient values ~1e-3 and, in the ranges, batch statistics ~0.5-2 (a variance) */
function mixedVector(seed: number): Float32Array {
  const rng = createRng(seed)
  return Float32Array.from({ length: N }, (_, i) => inRange(i) ? 0.5 + 1.5 * rng.nextFloat() : 1e-3 * rng.nextNormal())
}

function gradientError(sent: Float32Array, got: Float32Array): number {
  let sum = 0
  let count = 0
  for (let i = 0; i < N; i++) {
    if (inRange(i)) continue
    sum += Math.abs(got[i] - sent[i])
    count++
  }
  return sum / count
}

describe('exact ranges beside a lossy codec', () => {
  const config = CompressionConfigSchema.parse({ codec: 'qsgd', bits: 8, bucketSize: 512 })

  it('decodes the statistics bit for bit and codes the gradient as the inner codec alone would', () => {
    const v = mixedVector(1)
    const codec = createCodec(config, RANGES)
    const bytes = codec.encode(v, createRng(7))
    expect(bytes.length).toBe(codec.encodedSize(N))
    const got = codec.decode(bytes, N)
    for (const r of RANGES) expect(Array.from(got.subarray(r.offset, r.offset + r.size))).toEqual(Array.from(v.subarray(r.offset, r.offset + r.size)))

    // the values outside the ranges are exactly the inner codec's coding of them, packed
    const rest = v.filter((_, i) => !inRange(i))
    const inner = createQsgdCodec({ bits: 8, bucketSize: 512 })
    const alone = inner.decode(inner.encode(rest, createRng(7)), rest.length)
    expect(Array.from(got.filter((_, i) => !inRange(i)))).toEqual(Array.from(alone))
    expect(bytes.length).toBe(inner.encodedSize(rest.length) + 4 * 160)
  })

  it('quantized in the same buckets, the statistics swamp the gradient (why the ranges exist)', () => {
    const v = mixedVector(2)
    const exact = createCodec(config, RANGES)
    const mixed = createCodec(config)
    const errExact = gradientError(v, exact.decode(exact.encode(v, createRng(3)), N))
    const errMixed = gradientError(v, mixed.decode(mixed.encode(v, createRng(3)), N))
    expect(errMixed).toBeGreaterThan(10 * errExact)
  })

  it('decodes into a caller\'s buffer', () => {
    const v = mixedVector(3)
    const codec = createCodec(config, RANGES)
    const bytes = codec.encode(v, createRng(1))
    const into = new Float32Array(N).fill(9)
    const out = codec.decode(bytes, N, into)
    expect(out).toBe(into)
    expect(Array.from(out)).toEqual(Array.from(codec.decode(bytes, N)))
  })

  it('refuses what does not fit: a short vector, a wrong length, non-finite statistics', () => {
    const codec = createCodec(config, RANGES)
    const v = mixedVector(4)
    expect(() => codec.encode(v.subarray(0, 3010), createRng(1))).toThrow(CodecError)
    expect(() => codec.encodedSize(3010)).toThrow(/end at element 3032/)
    const bytes = codec.encode(v, createRng(1))
    expect(() => codec.decode(bytes.subarray(1), N)).toThrow(/truncated/)
    const poisoned = v.slice()
    poisoned[1070] = Number.NaN
    expect(() => codec.encode(poisoned, createRng(1))).toThrow(/non-finite running statistic NaN at index 1070/)
    // a forged payload: the first statistic's float32 set to +Inf
    const forged = bytes.slice()
    const at = bytes.length - 4 * 160
    new DataView(forged.buffer).setFloat32(at, Number.POSITIVE_INFINITY, true)
    expect(() => codec.decode(forged, N)).toThrow(/running statistic 1000 is Infinity/)
  })

  it('no ranges: the inner codec itself; overlapping ranges are a programming error', () => {
    const inner = createQsgdCodec({ bits: 8, bucketSize: 512 })
    expect(withExactRanges(inner, [])).toBe(inner)
    expect(() => withExactRanges(inner, [{ offset: 0, size: 10 }, { offset: 5, size: 10 }])).toThrow(/overlap at element 5/)
  })

  for (const codecName of ['fp16', 'none'] as const) {
    it(`${codecName}: the statistics exact, the rest as the codec codes it`, () => {
      const v = mixedVector(5)
      const codec = createCodec(CompressionConfigSchema.parse({ codec: codecName }), RANGES)
      const got = codec.decode(codec.encode(v, createRng(1)), N)
      for (const r of RANGES) expect(Array.from(got.subarray(r.offset, r.offset + r.size))).toEqual(Array.from(v.subarray(r.offset, r.offset + r.size)))
      expect(gradientError(v, got)).toBeLessThan(1e-5)
    })
  }
})
