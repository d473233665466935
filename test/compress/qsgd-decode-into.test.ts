/** qsgd decode into a reused buffer gives exactly what a fresh decode gives, zero buckets included. */
import { describe, expect, it } from 'vitest'
import { createQsgdCodec } from '../../ml/compress/qsgd-codec.js'
import { createRng } from '../../ml/core/rng.js'

describe('qsgd decode into a buffer', () => {
  for (const bits of [2, 4, 8] as const) {
    it(`${bits} bits: same values as a fresh decode, stale contents overwritten`, () => {
      const codec = createQsgdCodec({ bits, bucketSize: 64 })
      const rng = createRng(bits)
      const n = 64 * 10 + 7
      const v = Float32Array.from({ length: n }, (_, i) => (i >= 128 && i < 192 ? 0 : rng.nextNormal()))
      const bytes = codec.encode(v, createRng(1))
      const fresh = codec.decode(bytes, n)
      const reused = new Float32Array(n).fill(123)
      const out = codec.decode(bytes, n, reused)
      expect(out).toBe(reused)
      expect(Buffer.from(out.buffer).equals(Buffer.from(fresh.buffer))).toBe(true)
      expect(out.subarray(128, 192).every((x) => x === 0)).toBe(true)
      expect(() => codec.decode(bytes, n, new Float32Array(n - 1))).toThrow(/expected 647/)
    })
  }
})
