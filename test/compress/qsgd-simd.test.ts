/**
 * qsgd's SIMD encoder gives the scalar loop's bytes at 8, 4 and 2 bits, and its decoder the scalar
 * decoder's floats and refusals: the same draws in the same order, the same levels, signs,
 * packing and zero buckets, for lengths that do and do not fill the last iteration,
 * and one codec reused for vectors of different lengths (the kernel's memory keeps the previous
 * encode's codes, which must not leak into the next).
 */
import { describe, expect, it } from 'vitest'
import { createQsgdCodec } from '../../ml/compress/qsgd-codec.js'
import { createQsgd8Kernel, createQsgdKernel } from '../../ml/compress/qsgd-simd.js'
import { createRng } from '../../ml/core/rng.js'

function vector (n: number, seed: number): Float32Array {
  const rng = createRng(seed)
  const v = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    const r = rng.nextFloat()
    // zeros, exact ties with the norm (one-hot buckets below), tiny and large magnitudes, both signs
    v[i] = r < 0.1 ? 0 : (r < 0.2 ? -1 : 1) * rng.nextNormal() * 10 ** Math.floor(rng.nextFloat() * 6 - 4)
  }
  return v
}

describe('qsgd SIMD encoding', () => {
  it('compiles in this runtime at 8, 4 and 2 bits (else the codec falls back to the scalar loop and this file compares it with itself)', () => {
    expect(typeof createQsgd8Kernel().encode).toBe('function')
    for (const bits of [4, 2] as const) expect(typeof createQsgdKernel(bits).encode).toBe('function')
  })

  for (const bits of [8, 4, 2] as const) {
    it(`writes the scalar loop's bytes at ${bits} bits for every length and bucket size, zero and one-hot buckets included`, () => {
      for (const bucketSize of [512, 48, 20]) { // 20: not a multiple of 32 / bits below 8 bits, scalar there
        const simd = createQsgdCodec({ bits, bucketSize })
        const scalar = createQsgdCodec({ bits, bucketSize, simd: false })
        for (const n of [1, 3, 4, 5, 15, 17, 511, 512, 513, 1027, 5000, 65_537, 70_003]) {
          const v = vector(n, n)
          if (n > 1100) {
            v.fill(0, 512, 1024) // an all-zero bucket after buckets with codes
            v.fill(0, 1024, 1536); v[1030] = -3 // a one-hot bucket: |v| equals its norm
          }
          for (const seed of [1, 2]) {
            const a = simd.encode(v, createRng(seed))
            const b = scalar.encode(v, createRng(seed))
            expect(Buffer.from(a).equals(Buffer.from(b)), `n=${n} bucket ${bucketSize} seed ${seed}`).toBe(true)
          }
        }
      }
    })

    it(`does not carry codes from a longer or non-zero vector into the next encode (${bits} bits)`, () => {
      const simd = createQsgdCodec({ bits, bucketSize: 64 })
      const scalar = createQsgdCodec({ bits, bucketSize: 64, simd: false })
      simd.encode(vector(10_000, 7), createRng(3))
      const zeros = new Float32Array(300)
      expect(Buffer.from(simd.encode(zeros, createRng(4))).equals(Buffer.from(scalar.encode(zeros, createRng(4))))).toBe(true)
      expect(simd.encode(zeros, createRng(4)).every((b) => b === 0)).toBe(true)
      simd.encode(vector(10_000, 8), createRng(3))
      const short = vector(130, 9) // a last bucket of two values: scalar codes ORed into the kernel's window
      expect(Buffer.from(simd.encode(short, createRng(5))).equals(Buffer.from(scalar.encode(short, createRng(5))))).toBe(true)
    })
  }

  for (const bits of [8, 4, 2] as const) {
    it(`decodes to the scalar decoder's floats bit for bit at ${bits} bits, fresh or into a reused buffer, and refuses what it refuses`, () => {
      const simd = createQsgdCodec({ bits, bucketSize: 512 })
      const scalar = createQsgdCodec({ bits, bucketSize: 512, simd: false })
      const floats = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
      const reused = new Float32Array(200_003).fill(Number.NaN)
      for (const n of [1, 3, 4, 5, 513, 1027, 65_537, 200_003]) {
        const v = vector(n, n + 1)
        if (n > 1100) v.fill(0, 512, 1024) // a zero bucket between buckets with codes
        if (n > 70_000) v.fill(0, 65_536, 66_048) // one at the start of the second window
        const payload = scalar.encode(v, createRng(n))
        const expected = scalar.decode(payload, n)
        expect(floats(simd.decode(payload, n)).equals(floats(expected)), `n=${n}`).toBe(true)
        const into = reused.subarray(0, n).fill(Number.NaN)
        expect(floats(simd.decode(payload, n, into)).equals(floats(expected)), `n=${n} into`).toBe(true)
      }
      // a "-0" code (the sign bit alone) in each slot of a byte in the SIMD part and in the last
      // n % 4 values: the same refusal
      const signBit = 1 << (bits - 1)
      for (const at of [700, 701, 702, 703, 1024, 1026]) {
        const payload = scalar.encode(vector(1027, 5), createRng(1))
        const pos = at * bits
        const byte = 4 * 3 + (pos >>> 3)
        payload[byte] = (payload[byte] & ~(((1 << bits) - 1) << (pos & 7))) | (signBit << (pos & 7))
        expect(() => simd.decode(payload, 1027), `at ${at}`).toThrow(`qsgd: value ${at} is encoded as negative zero`)
        expect(() => scalar.decode(payload, 1027), `at ${at}`).toThrow(`qsgd: value ${at} is encoded as negative zero`)
      }
    })
  }
})
