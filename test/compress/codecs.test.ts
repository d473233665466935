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
