/**
 * The fp16 codec's SIMD kernels give the scalar loops' bytes, floats and refusals: the same bucket
 * scales and codes (the product in float64 rounded to float32, then to the nearest half, ties to
 * even, through the subnormals), for lengths with and without a partial last bucket, windows past
 * the kernel's 64 Ki values, buckets whose scale is under 2^-111 (where a float32 factor 2^15 / m
 * would overflow), every code an encoder writes, and one codec reused across lengths.
 */
import { describe, expect, it } from 'vitest'
import { CodecError, createFp16Codec } from '../../ml/compress/index.js'
import { createFp16Kernel } from '../../ml/compress/fp16-simd.js'
import { createRng } from '../../ml/core/rng.js'

const bytesOf = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

/** zeros, -0, both signs, magnitudes over 80 binades (2^-150..2^100: subnormal codes, tiny scales) */
function vector (n: number, seed: number): Float32Array {
  const rng = createRng(seed)
  const v = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    const r = rng.nextFloat()
    v[i] = r < 0.05 ? 0 : r < 0.1 ? -0 : (r < 0.55 ? -1 : 1) * rng.nextFloat() * 2 ** Math.floor(rng.nextFloat() * 80 - 50)
  }
  return v
}

/** any finite float32 bit pattern */
function randomBits (n: number, seed: number): Float32Array {
  const rng = createRng(seed)
  const words = new Uint32Array(n)
  const v = new Float32Array(words.buffer)
  for (let i = 0; i < n; i++) {
    do words[i] = rng.nextUint32()
    while (!Number.isFinite(v[i]))
  }
  return v
}

describe('fp16 SIMD kernels', () => {
  it('compile in this runtime (else the codec falls back to the scalar loops and this file compares them with themselves)', () => {
    expect(typeof createFp16Kernel().encode).toBe('function')
  })

  it('encode to the scalar loop\'s bytes and decode to its floats, for every length and bucket size', () => {
    const rng = createRng(1)
    for (const bucketSize of [8, 512, 100]) { // 100: not a multiple of 8, scalar throughout
      const simd = createFp16Codec({ bucketSize })
      const scalar = createFp16Codec({ bucketSize, simd: false })
      for (const n of [0, 1, 7, 8, 9, 511, 512, 513, 4096, 65_536 + 700, 140_001]) {
        for (const [kind, v] of [['wide', vector(n, n)], ['bits', randomBits(n, n + 1)]] as const) {
          if (n > 2000 && kind === 'wide') {
            v.fill(0, 512, 1024) // an all-zero bucket among others
            v.fill(-0, 1024, 1536)
            for (let i = 1536; i < 2048; i++) v[i] = (i % 2 === 0 ? 1 : -1) * 2 ** -130 * i // scale under 2^-111
          }
          const a = simd.encode(v, rng)
          const b = scalar.encode(v, rng)
          expect(Buffer.from(a).equals(Buffer.from(b)), `${kind} n=${n} bucket ${bucketSize}`).toBe(true)
          expect(bytesOf(simd.decode(a, n)).equals(bytesOf(scalar.decode(a, n))), `${kind} n=${n} bucket ${bucketSize}`).toBe(true)
        }
      }
    }
  })

  it('decodes every code an encoder writes under scales from 2^-140 to 2^60 as the scalar loop does, fresh or into a reused buffer', () => {
    const valid: number[] = []
    for (let h = 0; h < 0x10000; h++) if ((h & 0x7fff) <= 0x7800 && h !== 0x8000) valid.push(h)
    const buckets = 128
    const n = buckets * 512
    const payload = new Uint8Array(1 + 4 * buckets + 2 * n)
    const view = new DataView(payload.buffer)
    payload[0] = 2
    for (let b = 0; b < buckets; b++) view.setFloat32(1 + 4 * b, 1.7 * 2 ** (b * 1.6 - 140), true)
    for (let i = 0; i < n; i++) view.setUint16(1 + 4 * buckets + 2 * i, valid[(i * 7) % valid.length], true)
    const simd = createFp16Codec()
    const scalar = createFp16Codec({ simd: false })
    const expected = bytesOf(scalar.decode(payload, n))
    expect(bytesOf(simd.decode(payload, n)).equals(expected)).toBe(true)
    const reused = new Float32Array(n).fill(NaN)
    expect(simd.decode(payload, n, reused)).toBe(reused)
    expect(bytesOf(reused).equals(expected)).toBe(true)
  })

  it('refuses the codes the scalar loop refuses, naming the same value, and NaN or Inf input by its index', () => {
    const n = 4096
    const simd = createFp16Codec()
    const scalar = createFp16Codec({ simd: false })
    const payload = simd.encode(vector(n, 5).map((x) => x + 1), createRng(2))
    const codes = 1 + 4 * (n / 512)
    const refusal = (codec: typeof simd, bytes: Uint8Array): CodecError => {
      try {
        codec.decode(bytes, n)
      } catch (error) {
        if (error instanceof CodecError) return error
        throw error
      }
      throw new Error('decoded a payload it should refuse')
    }
    for (const [at, code] of [[700, 0x7c00], [701, 0x7e01], [2300, 0x8000], [4095, 0x7801], [9, 0xfc00]]) {
      const bad = payload.slice()
      new DataView(bad.buffer).setUint16(codes + 2 * at, code, true)
      const a = refusal(simd, bad)
      expect(a.message).toContain(`value ${at} `)
      expect([a.reason, a.message]).toEqual([refusal(scalar, bad).reason, refusal(scalar, bad).message])
    }
    // a non-zero code under a bucket whose scale is 0
    const zeroScale = payload.slice()
    new DataView(zeroScale.buffer).setFloat32(1 + 4 * 3, 0, true)
    expect(refusal(simd, zeroScale).message).toMatch(/^fp16: value 1536 has code 0x[0-9a-f]+, outside what scale 0 of bucket 3 allows/)

    const v = vector(70_000, 6)
    for (const [at, bad] of [[66_000, NaN], [3, -Infinity]] as const) {
      const w = v.slice()
      w[at] = bad
      expect(() => simd.encode(w, createRng(1))).toThrow(`cannot encode non-finite value ${bad} at index ${at}`)
    }
  })

  it('leaves nothing of a longer encode or decode in the next one', () => {
    const simd = createFp16Codec({ bucketSize: 64 })
    const scalar = createFp16Codec({ bucketSize: 64, simd: false })
    const long = simd.encode(vector(100_000, 8), createRng(1))
    simd.decode(long, 100_000)
    const zeros = new Float32Array(320)
    const encoded = simd.encode(zeros, createRng(1))
    expect(Buffer.from(encoded).equals(Buffer.from(scalar.encode(zeros, createRng(1))))).toBe(true)
    expect(simd.decode(encoded, 320).every((x) => Object.is(x, 0))).toBe(true)
  })
})
