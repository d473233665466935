/**
 * IEEE 754 binary16 conversion (Node 20 has no Float16Array).
 * float32 -> half rounds to nearest, ties to even, with overflow to +-Inf, gradual underflow
 * through the subnormals, and NaN kept as a quiet NaN.
 */

// conversion scratch: reading a float32's bits without allocating (holds no state between calls)
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** the binary16 bit pattern nearest to `value` (rounded to float32 first) */
export function float32ToFloat16Bits (value: number): number {
  f32[0] = value
  const x = u32[0]
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  const mant = x & 0x7fffff

  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13)
  const e = exp - 127
  if (e > 15) return sign | 0x7c00
  if (e >= -14) {
    // normal half: keep 10 mantissa bits, round the 13 dropped ones; a carry out of the
    // mantissa bumps the exponent, and out of exponent 30 gives exactly Inf (0x7c00)
    let h = ((e + 15) << 10) | (mant >>> 13)
    const rest = mant & 0x1fff
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1
    return sign | h
  }
  if (e < -25) return sign // below half of the smallest subnormal (2^-24): signed zero
  // subnormal half: value = m * 2^(e-23) with the implicit bit, in units of 2^-24
  const m = mant | 0x800000
  const shift = -e - 1 // 14..24
  let h = m >>> shift
  const rest = m & ((1 << shift) - 1)
  const half = 1 << (shift - 1)
  if (rest > half || (rest === half && (h & 1) === 1)) h += 1
  return sign | h
}

export function float16BitsToFloat32 (bits: number): number {
  const sign = (bits & 0x8000) !== 0 ? -1 : 1
  const exp = (bits >>> 10) & 0x1f
  const mant = bits & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN
  return sign * (1024 + mant) * 2 ** (exp - 25)
}

/** all 65,536 half values as float32 (index = bit pattern); treat as read-only */
export const FLOAT16_TABLE: Float32Array = (() => {
  const table = new Float32Array(65536)
  for (let bits = 0; bits < 65536; bits++) table[bits] = float16BitsToFloat32(bits)
  return table
})()
