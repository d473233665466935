import { describe, expect, it } from 'vitest'
import { AggregationConfigSchema, AggregationRuleSchema, CompressionConfigSchema } from '../../config/job-config.js'
import { createAggregator } from '../../ml/aggregate/index.js'
import { createCodec } from '../../ml/compress/index.js'
import { createRng, deriveSeed } from '../../ml/core/rng.js'

const rules = ['mean', 'trimmed-mean', 'median', 'krum', 'multi-krum', 'centered-clip'] as const
const bitsOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

describe('determinism across peers', () => {
  it('peers decoding the same QSGD payloads and aggregating get bit-identical results with every rule', () => {
    const d = 4097
    const senders = 6
    const codecConfig = CompressionConfigSchema.parse({ codec: 'qsgd', bits: 4, bucketSize: 256 })
    const payloads = Array.from({ length: senders }, (_, s) => {
      const rng = createRng(deriveSeed(5, s))
      const g = Float32Array.from({ length: d }, () => rng.nextNormal() * (1 + s))
      return createCodec(codecConfig).encode(g, createRng(deriveSeed(6, s)))
    })
    for (const rule of rules) {
      const config = AggregationConfigSchema.parse({ rule, f: 1 })
      // each "peer" has its own codec and aggregator instances and its own copies of the bytes
      const results = [0, 1, 2].map(() => {
        const codec = createCodec(codecConfig)
        const decoded = payloads.map((p) => codec.decode(p.slice(), d))
        return createAggregator(config).aggregate(decoded)
      })
      expect(bitsOf(results[1]).equals(bitsOf(results[0]))).toBe(true)
      expect(bitsOf(results[2]).equals(bitsOf(results[0]))).toBe(true)
    }
  })

  it('the median does not even depend on the input order, and no rule mutates its inputs', () => {
    const rng = createRng(3)
    const g = Array.from({ length: 7 }, () => Float32Array.from({ length: 999 }, () => rng.nextNormal()))
    const copies = g.map((x) => x.slice())
    const reversed = [...g].reverse()
    const median = createAggregator(AggregationConfigSchema.parse({ rule: 'median', f: 2 }))
    expect(bitsOf(median.aggregate(g)).equals(bitsOf(median.aggregate(reversed)))).toBe(true)
    for (const rule of rules) createAggregator(AggregationConfigSchema.parse({ rule, f: 2 })).aggregate(g)
    g.forEach((x, i) => expect(bitsOf(x).equals(bitsOf(copies[i]))).toBe(true))
  })

  it("every rule writes the same bits into a given output array as into a fresh one (n = 4, 7, 17: the trimmed mean's four-input path, the sorting one, the selecting one), and refuses an output that is an input or of another length", () => {
    for (const n of [4, 7, 17]) {
      const rng = createRng(n)
      const g = Array.from({ length: n }, () => Float32Array.from({ length: 1001 }, () => rng.nextNormal()))
      for (const rule of AggregationRuleSchema.options) {
        const aggregator = createAggregator(AggregationConfigSchema.parse({ rule, f: 1 }))
        if (n < aggregator.minInputs()) continue // Krum needs 2f + 3
        const out = new Float32Array(1001).fill(Number.NaN)
        const written = aggregator.aggregate(g, { out })
        expect(written, `${rule} n=${n}`).toBe(out)
        expect(bitsOf(out).equals(bitsOf(aggregator.aggregate(g))), `${rule} n=${n}`).toBe(true)
        expect(() => aggregator.aggregate(g, { out: g[1] })).toThrow(/output array is one of the inputs/)
        expect(() => aggregator.aggregate(g, { out: new Float32Array(1000) })).toThrow(/output array has 1000 values but the gradients have 1001/)
      }
    }
  })
})
