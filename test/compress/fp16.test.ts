import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import { CodecError, createFp16Codec, FLOAT16_TABLE, float16BitsToFloat32, float32ToFloat16Bits } from '../../ml/compress/index.js'

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
function nextUp (x: number): number { // next float32 towards +Inf, x > 0
  f32[0] = x
  u32[0] += 1
  return f32[0]
}
function nextDown (x: number): number { // next float32 towards 0, x > 0
  f32[0] = x
  u32[0] -= 1
  return f32[0]
}

/** every finite non-negative half value, ascending, with its bit pattern (0x0000..0x7bff) */
const POSITIVE_HALVES = Array.from({ length: 0x7c00 }, (_, bits) => ({ bits, value: float16BitsToFloat32(bits) }))

/** brute-force reference: nearest half by comparing against the neighbours, ties to the even pattern */
function referenceHalf (x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0
  const a = Math.abs(x)
  if (a >= 65520) return sign | 0x7c00 // 65520 is the tie between 65504 and 2^16: even rounds up
  let lo = 0
  let hi = POSITIVE_HALVES.length - 1
  while (hi - lo > 1) { // largest half <= a
    const mid = (lo + hi) >> 1
    if (POSITIVE_HALVES[mid].value <= a) lo = mid
    else hi = mid
  }
  if (POSITIVE_HALVES[hi].value <= a) lo = hi
  const below = POSITIVE_HALVES[lo]
  if (below.value === a || lo === POSITIVE_HALVES.length - 1) return sign | below.bits
  const above = POSITIVE_HALVES[lo + 1]
  const dBelow = a - below.value
  const dAbove = above.value - a
  if (dBelow < dAbove) return sign | below.bits
  if (dAbove < dBelow) return sign | above.bits
  return sign | ((below.bits & 1) === 0 ? below.bits : above.bits)
}

describe('float16 conversion', () => {
  it('decodes known bit patterns', () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1)
    expect(float16BitsToFloat32(0xc000)).toBe(-2)
    expect(float16BitsToFloat32(0x7bff)).toBe(65504)
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14)
    expect(float16BitsToFloat32(0x03ff)).toBe(1023 * 2 ** -24)
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24)
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true)
    expect(float16BitsToFloat32(0x3555)).toBeCloseTo(1 / 3, 3)
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity)
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity)
    expect(float16BitsToFloat32(0x7e00)).toBeNaN()
  })

  it('round-trips every one of the 63,488 finite half values (subnormals and -0 included)', () => {
    let checked = 0
    for (let bits = 0; bits < 65536; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue
      const value = float16BitsToFloat32(bits)
      expect(FLOAT16_TABLE[bits]).toBe(value)
      const back = float32ToFloat16Bits(value)
      if (back !== bits) expect.fail(`0x${bits.toString(16)} -> ${value} -> 0x${back.toString(16)}`)
      checked++
    }
    expect(checked).toBe(2 * 31 * 1024) // both signs, exponents 0..30, every mantissa
  })

  it('rounds every tie between neighbouring halves to the even pattern, and just off a tie to the nearer one', () => {
    for (let i = 0; i + 1 < POSITIVE_HALVES.length; i++) {
      const lo = POSITIVE_HALVES[i]
      const hi = POSITIVE_HALVES[i + 1]
      const mid = (lo.value + hi.value) / 2
      expect(Math.fround(mid)).toBe(mid) // a tie needs 12 significant bits: exact in float32
      const even = (lo.bits & 1) === 0 ? lo.bits : hi.bits
      if (float32ToFloat16Bits(mid) !== even) expect.fail(`tie ${mid} should round to 0x${even.toString(16)}`)
      if (float32ToFloat16Bits(-mid) !== (0x8000 | even)) expect.fail(`tie ${-mid}`)
      if (float32ToFloat16Bits(nextDown(mid)) !== lo.bits) expect.fail(`below tie ${mid}`)
      if (float32ToFloat16Bits(nextUp(mid)) !== hi.bits) expect.fail(`above tie ${mid}`)
    }
  })

  it('overflows to Inf at and above 65520 (the tie above max rounds to even = Inf), keeps NaN', () => {
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff)
    expect(float32ToFloat16Bits(nextDown(65520))).toBe(0x7bff)
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00)
    expect(float32ToFloat16Bits(-65520)).toBe(0xfc00)
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00)
    expect(float32ToFloat16Bits(3.4e38)).toBe(0x7c00)
    expect(float32ToFloat16Bits(Infinity)).toBe(0x7c00)
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00)
    const nan = float32ToFloat16Bits(NaN)
    expect(nan & 0x7c00).toBe(0x7c00)
    expect(nan & 0x3ff).not.toBe(0)
  })

  it('underflows gradually: 2^-25 is a tie that rounds to 0, just above it to the smallest subnormal', () => {
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001)
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000)
    expect(float32ToFloat16Bits(nextUp(2 ** -25))).toBe(0x0001)
    expect(float32ToFloat16Bits(-(2 ** -25))).toBe(0x8000)
    expect(float32ToFloat16Bits(1.5 * 2 ** -24)).toBe(0x0002) // tie between 1 and 2: even
    expect(float32ToFloat16Bits(2 ** -26)).toBe(0x0000)
    expect(float32ToFloat16Bits(1e-45)).toBe(0x0000) // float32 subnormal
    expect(float32ToFloat16Bits(-0)).toBe(0x8000)
    expect(float32ToFloat16Bits(nextDown(2 ** -14))).toBe(0x0400) // rounds up into the normals
  })

  it('matches a brute-force nearest-half reference on 200,000 random float32 values', () => {
    const rng = createRng(31)
    for (let i = 0; i < 200_000; i++) {
      // random exponent between 2^-30 and 2^17 so subnormal, normal and overflow ranges are all hit
      const x = (rng.nextFloat() < 0.5 ? -1 : 1) * Math.fround((1 + rng.nextFloat()) * 2 ** (rng.nextInt(48) - 30))
      const want = referenceHalf(x)
      const got = float32ToFloat16Bits(x)
      if (got !== want) expect.fail(`${x}: got 0x${got.toString(16)}, want 0x${want.toString(16)}`)
    }
  })
})

describe('fp16 codec (version 2: a scale per bucket)', () => {
  const codec = createFp16Codec({ bucketSize: 4 })
  const expectError = (fn: () => unknown, reason: string): void => {
    expect(fn).toThrow(CodecError)
    try { fn() } catch (error) { expect((error as CodecError).reason).toBe(reason) }
  }

  it('stores a version byte, one float32 scale per bucket and 2 bytes per value, little-endian', () => {
    expect(codec.encodedSize(10)).toBe(1 + 4 * 3 + 20)
    expect(createFp16Codec().encodedSize(1000)).toBe(1 + 4 * 2 + 2000)
    const bytes = codec.encode(new Float32Array([1, -2]), createRng(0))
    // version 2, scale 2.0, then 1 / 2 * 2^15 = 2^14 (0x7400) and -2^15 (0xf800)
    expect(Array.from(bytes)).toEqual([2, 0x00, 0x00, 0x00, 0x40, 0x00, 0x74, 0x00, 0xf8])
    expect(Array.from(codec.decode(bytes, 2))).toEqual([1, -2])
  })

  it('round-trips within half an ulp of the bucket-relative code, and re-encodes what it decoded to the same bytes', () => {
    const big = createFp16Codec()
    const rng = createRng(8)
    const v = new Float32Array(10_000).map(() => rng.nextNormal() * 10)
    const bytes = big.encode(v, rng)
    expect(bytes.length).toBe(big.encodedSize(v.length))
    const out = big.decode(bytes, v.length)
    for (let b = 0; b < v.length; b += 512) {
      const bucket = v.subarray(b, b + 512)
      const max = Math.max(...Array.from(bucket, Math.abs))
      for (let i = b; i < Math.min(v.length, b + 512); i++) {
        // a code of magnitude c >= 2^-14 has relative error <= 2^-11; below that the step is 2^-24 of the code
        const code = Math.abs(v[i]) / max * 32768
        const tolerance = (code >= 2 ** -14 ? code * 2 ** -11 : 2 ** -25) * max / 32768 + Math.abs(v[i]) * 2 ** -23
        expect(Math.abs(out[i] - v[i])).toBeLessThanOrEqual(tolerance)
      }
    }
    expect(Buffer.from(big.encode(out, rng)).equals(Buffer.from(bytes))).toBe(true)
  })

  it('encodes every finite gradient, also values up to 1e30 and float32 extremes, where a plain cast overflowed past 65504', () => {
    const v = new Float32Array([1e30, -3e29, 1, 1e-3, 70_000, -65_520, 0, 2, 3.4028234e38, -1e-45, 5e-39, 0])
    const out = codec.decode(codec.encode(v, createRng(0)), v.length)
    expect(Array.from(out).every(Number.isFinite)).toBe(true)
    expect(Math.abs(out[0] - 1e30)).toBeLessThanOrEqual(1e30 * 2 ** -11)
    expect(Math.abs(out[1] + 3e29)).toBeLessThanOrEqual(3e29 * 2 ** -11)
    expect(out[4]).toBeCloseTo(70_000, -2)
    expect(out[5]).toBeCloseTo(-65_520, -2)
    expect(out[8]).toBe(3.4028234663852886e38)
    // in a bucket with 1e30, 1 and 1e-3 are below the code's resolution: they read as 0, never as garbage
    expect(Math.abs(out[2])).toBeLessThanOrEqual(1e30 * 2 ** -39)
    expect(Object.is(out[6], 0) && Object.is(out[11], 0)).toBe(true)
  })

  it('refuses NaN and Inf input, bad lengths, unknown versions, bad scales and codes outside the scale', () => {
    expectError(() => codec.encode(new Float32Array([1, NaN, 3]), createRng(0)), 'non-finite')
    expect(() => codec.encode(new Float32Array([1, 2, Infinity]), createRng(0))).toThrow(/index 2/)
    const good = codec.encode(new Float32Array([1, -2, 0.5]), createRng(0))
    expectError(() => codec.decode(good.subarray(0, good.length - 1), 3), 'length')
    expectError(() => codec.decode(new Uint8Array(good.length + 1), 3), 'length')
    const patched = (at: number, value: number, as: 'u8' | 'f32' | 'u16'): Uint8Array => {
      const b = good.slice()
      const view = new DataView(b.buffer)
      if (as === 'u8') b[at] = value
      else if (as === 'f32') view.setFloat32(at, value, true)
      else view.setUint16(at, value, true)
      return b
    }
    for (const version of [0, 1, 3, 255]) expectError(() => codec.decode(patched(0, version, 'u8'), 3), 'version')
    expect(() => codec.decode(patched(0, 1, 'u8'), 3)).toThrow(/version 1.*version 2/)
    for (const scale of [NaN, Infinity, -1, -0]) expectError(() => codec.decode(patched(1, scale, 'f32'), 3), 'non-finite')
    expectError(() => codec.decode(patched(5, 0x7c00, 'u16'), 3), 'non-finite')
    expectError(() => codec.decode(patched(5, 0xfe01, 'u16'), 3), 'non-finite')
    expectError(() => codec.decode(patched(5, 0x7801, 'u16'), 3), 'non-canonical')
    expectError(() => codec.decode(patched(5, 0x8000, 'u16'), 3), 'non-canonical')
    const zero = codec.encode(new Float32Array(3), createRng(0))
    expect(Array.from(codec.decode(zero, 3))).toEqual([0, 0, 0])
    const forged = zero.slice()
    forged[5] = 1
    expectError(() => codec.decode(forged, 3), 'non-canonical')
  })
})
