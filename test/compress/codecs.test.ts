import { describe, expect, it } from 'vitest'
import { CompressionConfigSchema } from '../../config/job-config.js'
import { createRng } from '../../ml/core/rng.js'
import { CodecError, createCodec, createRawCodec } from '../../ml/compress/index.js'

describe("codec 'none'", () => {
  const codec = createRawCodec()

  it('is raw little-endian float32 and round-trips every bit (-0, subnormals, extremes)', () => {
    expect(Array.from(codec.encode(new Float32Array([1]), createRng(0)))).toEqual([0x00, 0x00, 0x80, 0x3f])
    const v = new Float32Array([0, -0, 1e-45, -1.17549435e-38, 3.4028234e38, -3.4028234e38, Math.PI, -1 / 3])
    const bytes = codec.encode(v, createRng(0))
    expect(bytes.length).toBe(codec.encodedSize(v.length))
    expect(bytes.length).toBe(32)
    const host = new Uint8Array(bytes.length + 1)
    host.set(bytes, 1) // unaligned view
    const out = codec.decode(host.subarray(1), v.length)
    expect(Buffer.from(out.buffer).equals(Buffer.from(v.buffer))).toBe(true)
    expect(Object.is(out[1], -0)).toBe(true)
  })

  it('refuses non-finite values both ways and wrong lengths', () => {
    expect(() => codec.encode(new Float32Array([1, Infinity]), createRng(0))).toThrow(/index 1/)
    const bytes = new Uint8Array(8)
    new DataView(bytes.buffer).setFloat32(4, NaN, true)
    expect(() => codec.decode(bytes, 2)).toThrow(CodecError)
    expect(() => codec.decode(new Uint8Array(7), 2)).toThrow(/truncated: 7 bytes, expected 8/)
    expect(() => codec.decode(new Uint8Array(9), 2)).toThrow(/too long/)
  })
})

describe('createCodec', () => {
  it('builds the codec a compression config names, with its sizes', () => {
    const d = 1_863_690 // 784-1024-1024-10
    const qsgd8 = createCodec(CompressionConfigSchema.parse({}))
    expect(qsgd8.id).toBe('qsgd')
    expect(qsgd8.encodedSize(d)).toBe(4 * Math.ceil(d / 512) + d)
    const qsgd2 = createCodec(CompressionConfigSchema.parse({ bits: 2, bucketSize: 1024 }))
    expect(qsgd2.encodedSize(d)).toBe(4 * Math.ceil(d / 1024) + Math.ceil(d / 4))
    expect(createCodec(CompressionConfigSchema.parse({ codec: 'fp16' })).encodedSize(d)).toBe(1 + 4 * Math.ceil(d / 512) + 2 * d)
    expect(createCodec(CompressionConfigSchema.parse({ codec: 'none' })).encodedSize(d)).toBe(4 * d)
  })

  it('gives every codec the same decode for the same bytes (deterministic across instances)', () => {
    const rng = createRng(3)
    const v = new Float32Array(3000).map(() => rng.nextNormal())
    for (const codecName of ['qsgd', 'fp16', 'none'] as const) {
      const config = CompressionConfigSchema.parse({ codec: codecName, bits: 4 })
      const bytes = createCodec(config).encode(v, createRng(4))
      const a = createCodec(config).decode(bytes, v.length)
      const b = createCodec(config).decode(bytes.slice(), v.length)
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true)
      // bytes from one codec are the wrong length for another
      const other = createCodec(CompressionConfigSchema.parse({ codec: codecName === 'none' ? 'fp16' : 'none' }))
      expect(() => other.decode(bytes, v.length)).toThrow(CodecError)
    }
  })
})

describe('encode into a caller\'s buffer', () => {
  const configs = [
    { codec: 'qsgd', bits: 8 }, { codec: 'qsgd', bits: 4 }, { codec: 'qsgd', bits: 2 }, { codec: 'qsgd', bits: 8, bucketSize: 510 },
    { codec: 'fp16' }, { codec: 'none' }
  ] as const

  it.each(configs)('writes the bytes a fresh encode returns, into a dirty reused buffer at any offset (%o)', (config) => {
    const n = 5_000
    const rng = createRng(7)
    const v = Float32Array.from({ length: n }, (_, i) => i >= 1024 && i < 1536 ? 0 : rng.nextFloat() - 0.5) // one all-zero bucket
    for (const exact of [[], [{ offset: 100, size: 7 }]]) {
      const codec = createCodec(CompressionConfigSchema.parse(config), exact)
      const fresh = codec.encode(v, createRng(3))
      const host = new Uint8Array(codec.encodedSize(n) + 64).fill(0xa5)
      for (const offset of [0, 1, 8]) {
        const into = host.subarray(offset)
        const out = codec.encode(v, createRng(3), into)
        expect(out.buffer).toBe(host.buffer)
        expect(out.byteOffset).toBe(host.byteOffset + offset)
        expect(Buffer.from(out).equals(Buffer.from(fresh)), `offset ${offset}, exact ${exact.length}`).toBe(true)
        // and again over its own bytes: nothing of the last encoding survives
        host.fill(0xff)
        expect(Buffer.from(codec.encode(v, createRng(3), into)).equals(Buffer.from(fresh))).toBe(true)
      }
      expect(() => codec.encode(v, createRng(3), new Uint8Array(codec.encodedSize(n) - 1))).toThrow(CodecError)
    }
  })
})
