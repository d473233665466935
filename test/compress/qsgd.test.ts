import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import { CodecError, createQsgdCodec, type QsgdBits } from '../../ml/compress/index.js'

function gaussianVector (d: number, seed: number, scale = 1): Float32Array {
  const rng = createRng(seed)
  const v = new Float32Array(d)
  for (let i = 0; i < d; i++) v[i] = rng.nextNormal() * scale
  return v
}

function bucketNorms (v: Float32Array, bucketSize: number): number[] {
  const norms: number[] = []
  for (let start = 0; start < v.length; start += bucketSize) {
    let s = 0
    for (let i = start; i < Math.min(start + bucketSize, v.length); i++) s += v[i] * v[i]
    norms.push(Math.fround(Math.sqrt(s)))
  }
  return norms
}

function expectCodecError (fn: () => unknown, reason: string, message: RegExp): void {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(CodecError)
    expect((error as CodecError).reason).toBe(reason)
    expect((error as Error).message).toMatch(message)
    return
  }
  throw new Error('expected a CodecError')
}

describe('qsgd byte sizes', () => {
  const cases: Array<[QsgdBits, number]> = [[8, 1], [4, 0.5], [2, 0.25]]
  for (const [bits, bytesPerValue] of cases) {
    it(`${bits}-bit packs ${bytesPerValue} bytes per value plus one float32 norm per bucket`, () => {
      const codec = createQsgdCodec({ bits, bucketSize: 512 })
      const d = 61_706 // lenet5
      const bytes = codec.encode(gaussianVector(d, 1), createRng(2))
      const expected = 4 * Math.ceil(d / 512) + Math.ceil(d * bytesPerValue)
      expect(bytes.length).toBe(expected)
      expect(codec.encodedSize(d)).toBe(expected)
      const ratio = bytes.length / (4 * d)
      if (bits === 8) expect(ratio).toBeLessThanOrEqual(0.3)
      expect(ratio).toBeCloseTo(bytesPerValue / 4 + 1 / 512, 3)
    })
  }

  it('handles a partial last bucket and a count that does not fill the last byte', () => {
    const codec = createQsgdCodec({ bits: 2, bucketSize: 16 })
    for (const d of [0, 1, 3, 16, 17, 35]) {
      const v = gaussianVector(d, d + 10)
      const bytes = codec.encode(v, createRng(3))
      expect(bytes.length).toBe(4 * Math.ceil(d / 16) + Math.ceil(d / 4))
      expect(codec.decode(bytes, d).length).toBe(d)
    }
  })
})

describe('qsgd values', () => {
  for (const bits of [2, 4, 8] as const) {
    it(`${bits}-bit decodes each value to one of the two levels around it, same sign`, () => {
      const bucketSize = 64
      const s = 2 ** (bits - 1) - 1
      const codec = createQsgdCodec({ bits, bucketSize })
      const v = gaussianVector(1000, 5)
      v[10] = 0
      const norms = bucketNorms(v, bucketSize)
      const q = codec.decode(codec.encode(v, createRng(6)), v.length)
      for (let i = 0; i < v.length; i++) {
        const norm = norms[Math.floor(i / bucketSize)]
        const a = Math.abs(v[i]) / norm * s
        const level = Math.abs(q[i]) / norm * s
        expect(Math.abs(level - Math.round(level))).toBeLessThan(1e-4)
        expect(Math.round(level) === Math.floor(a) || Math.round(level) === Math.ceil(a)).toBe(true)
        if (q[i] !== 0) expect(Math.sign(q[i])).toBe(Math.sign(v[i]))
      }
      expect(q[10]).toBe(0)
    })
  }

  it('is reproducible: the same rng seed gives the same bytes, decoding is bit-identical', () => {
    const codec = createQsgdCodec({ bits: 4, bucketSize: 128 })
    const v = gaussianVector(5000, 7)
    const a = codec.encode(v, createRng(99))
    const b = codec.encode(v, createRng(99))
    const c = codec.encode(v, createRng(100))
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true)
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false)
    const d1 = codec.decode(a, v.length)
    // an unaligned copy inside a larger buffer decodes to the same bits
    const host = new Uint8Array(a.length + 3)
    host.set(a, 3)
    const d2 = codec.decode(host.subarray(3), v.length)
    expect(Buffer.from(d1.buffer).equals(Buffer.from(d2.buffer))).toBe(true)
  })

  it('encodes zero vectors and zero buckets as zero norms and zero codes', () => {
    const codec = createQsgdCodec({ bits: 8, bucketSize: 16 })
    const zero = new Float32Array(40)
    const bytes = codec.encode(zero, createRng(1))
    expect(bytes.every((x) => x === 0)).toBe(true)
    expect(Array.from(codec.decode(bytes, 40))).toEqual(new Array(40).fill(0))

    const mixed = gaussianVector(48, 3)
    mixed.fill(0, 16, 32) // middle bucket all zero
    const out = codec.decode(codec.encode(mixed, createRng(2)), 48)
    expect(Array.from(out.subarray(16, 32))).toEqual(new Array(16).fill(0))
    expect(out.subarray(0, 16).some((x) => x !== 0)).toBe(true)
  })

  it('keeps a one-hot bucket exact (|v_i| equals the norm)', () => {
    const codec = createQsgdCodec({ bits: 2, bucketSize: 16 })
    const v = new Float32Array(16)
    v[5] = -3.25
    const out = codec.decode(codec.encode(v, createRng(1)), 16)
    expect(out[5]).toBe(-3.25)
    expect(out.filter((x) => x !== 0).length).toBe(1)
  })
})

describe('qsgd statistics', () => {
  for (const bits of [2, 4, 8] as const) {
    it(`${bits}-bit is unbiased: the mean of 20,000 encodings is within 5 standard errors of v`, () => {
      const d = 64
      const s = 2 ** (bits - 1) - 1
      const codec = createQsgdCodec({ bits, bucketSize: d })
      const v = gaussianVector(d, 11)
      const norm = bucketNorms(v, d)[0]
      const trials = 20_000
      const sum = new Float64Array(d)
      const rng = createRng(12)
      for (let t = 0; t < trials; t++) {
        const q = codec.decode(codec.encode(v, rng), d)
        for (let i = 0; i < d; i++) sum[i] += q[i]
      }
      let worstZ = 0
      for (let i = 0; i < d; i++) {
        const a = Math.abs(v[i]) / norm * s
        const p = a - Math.floor(a)
        // standard error of the mean of a two-point variable; floor at 1 level-step / trials
        const se = Math.max((norm / s) * Math.sqrt(p * (1 - p) / trials), norm / s / trials)
        worstZ = Math.max(worstZ, Math.abs(sum[i] / trials - v[i]) / se)
      }
      expect(worstZ).toBeLessThan(5)
    })

    it(`${bits}-bit variance matches its exact value and stays under min(d/s^2, sqrt(d)/s)·||v||^2 per bucket`, () => {
      const bucketSize = 64
      const s = 2 ** (bits - 1) - 1
      const codec = createQsgdCodec({ bits, bucketSize })
      // four buckets with very different scales: the bound must hold for each separately
      const v = gaussianVector(4 * bucketSize, 21)
      for (let i = 0; i < bucketSize; i++) v[i] *= 1e-4
      for (let i = 2 * bucketSize; i < 3 * bucketSize; i++) v[i] *= 1e3
      const norms = bucketNorms(v, bucketSize)
      const trials = 4000
      const errors = new Float64Array(4)
      const rng = createRng(22)
      for (let t = 0; t < trials; t++) {
        const q = codec.decode(codec.encode(v, rng), v.length)
        for (let i = 0; i < v.length; i++) errors[Math.floor(i / bucketSize)] += (q[i] - v[i]) ** 2
      }
      for (let b = 0; b < 4; b++) {
        const norm = norms[b]
        let exact = 0
        let normSq = 0
        for (let i = b * bucketSize; i < (b + 1) * bucketSize; i++) {
          const a = Math.abs(v[i]) / norm * s
          const p = a - Math.floor(a)
          exact += (norm / s) ** 2 * p * (1 - p)
          normSq += v[i] * v[i]
        }
        const empirical = errors[b] / trials
        const bound = Math.min(bucketSize / s ** 2, Math.sqrt(bucketSize) / s) * normSq
        expect(Math.abs(empirical - exact) / exact).toBeLessThan(0.05)
        expect(empirical).toBeLessThanOrEqual(bound)
        expect(exact).toBeLessThanOrEqual(bound)
      }
    })
  }
})

describe('qsgd rejects bad input', () => {
  const codec = createQsgdCodec({ bits: 4, bucketSize: 16 })
  const v = gaussianVector(33, 4) // 3 buckets, 17 code bytes, the last half-filled
  const good = codec.encode(v, createRng(5))

  it('refuses non-finite values and norms that overflow float32 on encode', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const w = v.slice()
      w[7] = bad
      expectCodecError(() => codec.encode(w, createRng(1)), 'non-finite', /index 7/)
    }
    const huge = new Float32Array(16).fill(3e38)
    expectCodecError(() => codec.encode(huge, createRng(1)), 'overflow', /bucket 0/)
  })

  it('refuses wrong lengths and truncated payloads', () => {
    expect(good.length).toBe(4 * 3 + 17)
    expectCodecError(() => codec.decode(good.subarray(0, good.length - 1), 33), 'length', /truncated/)
    expectCodecError(() => codec.decode(new Uint8Array(0), 33), 'length', /truncated/)
    const longer = new Uint8Array(good.length + 1)
    longer.set(good)
    expectCodecError(() => codec.decode(longer, 33), 'length', /too long/)
    expectCodecError(() => codec.decode(good, 32), 'length', /expected/)
    expectCodecError(() => codec.decode(good, -1), 'count', /non-negative/)
  })

  it('refuses non-finite, negative and -0 norms', () => {
    for (const [norm, reason] of [[NaN, 'non-finite'], [Infinity, 'non-finite'], [-1, 'non-canonical'], [-0, 'non-canonical']] as const) {
      const bad = good.slice()
      new DataView(bad.buffer).setFloat32(4, norm, true)
      expectCodecError(() => codec.decode(bad, 33), reason, /bucket 1/)
    }
  })

  it('refuses non-canonical codes: negative zero, levels under a zero norm, non-zero padding', () => {
    const zeros = codec.encode(new Float32Array(33), createRng(1))
    const negZero = zeros.slice()
    negZero[12] = 0b1000 // value 0: sign set, level 0
    expectCodecError(() => codec.decode(negZero, 33), 'non-canonical', /negative zero/)
    const levelUnderZero = zeros.slice()
    levelUnderZero[12] = 0b0011
    expectCodecError(() => codec.decode(levelUnderZero, 33), 'non-canonical', /norm is 0/)
    const padded = good.slice()
    padded[padded.length - 1] |= 0xf0
    expectCodecError(() => codec.decode(padded, 33), 'non-canonical', /padding/)
  })
})

describe('qsgd sub-byte decoding', () => {
  for (const bits of [2, 4] as const) {
    it(`${bits}-bit: each value is its code's signed level x norm / levels, in buckets that start on a byte and off one, and a -0 code is refused in every slot of a byte`, () => {
      const levels = 2 ** (bits - 1) - 1
      const perByte = 8 / bits
      const n = 61
      for (const bucketSize of [16, 3, 5, 6]) {
        const codec = createQsgdCodec({ bits, bucketSize })
        const payload = codec.encode(gaussianVector(n, bucketSize), createRng(3))
        const codeStart = 4 * Math.ceil(n / bucketSize)
        const view = new DataView(payload.buffer, payload.byteOffset)
        const out = codec.decode(payload, n)
        for (let i = 0; i < n; i++) {
          const pos = i * bits
          const code = (payload[codeStart + (pos >>> 3)] >>> (pos & 7)) & ((1 << bits) - 1)
          const level = code & levels
          const norm = view.getFloat32(4 * Math.floor(i / bucketSize), true)
          if (out[i] !== Math.fround(((code & (levels + 1)) !== 0 ? -level : level) * (norm / levels))) expect.fail(`bucket size ${bucketSize}: value ${i} decoded to ${out[i]}`)
        }
        for (const at of [0, 1, perByte - 1, perByte, 34, n - 1]) {
          const bad = payload.slice()
          const pos = at * bits
          const byte = codeStart + (pos >>> 3)
          bad[byte] = (bad[byte] & ~(((1 << bits) - 1) << (pos & 7))) | ((levels + 1) << (pos & 7))
          expectCodecError(() => codec.decode(bad, n), 'non-canonical', new RegExp(`^qsgd: value ${at} is encoded as negative zero`))
        }
      }
    })
  }
})
