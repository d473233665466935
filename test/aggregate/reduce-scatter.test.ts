/**
 * The robust reduce-scatter's arithmetic (ml/aggregate/reduce-scatter.ts): slices cover the
 * vector, every member replicates 2f+1 slices, the result equals the rule over whole vectors for
 * coordinate-wise rules, and f corrupt replicas of a slice change nothing while f+1 can.
 */
import { describe, expect, it } from 'vitest'
import { AggregationConfigSchema } from '../../config/job-config.js'
import { createAggregator } from '../../ml/aggregate/index.js'
import { reduceScatterAggregate, sliceRanges, sliceReplicas } from '../../ml/aggregate/reduce-scatter.js'
import { createRng } from '../../ml/core/rng.js'

const vectors = (n: number, d: number, seed: number): Float32Array[] => {
  const rng = createRng(seed)
  return Array.from({ length: n }, () => Float32Array.from({ length: d }, () => rng.nextFloat() - 0.5))
}
const same = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

describe('slices and replicas', () => {
  it('slices cover the vector once, contiguous, on block boundaries', () => {
    for (const [count, slices, align] of [[61_706, 16, 512], [1000, 7, 1], [100, 16, 64], [0, 4, 512]]) {
      const ranges = sliceRanges(count, slices, align)
      expect(ranges).toHaveLength(slices)
      expect(ranges[0].start).toBe(0)
      expect(ranges[slices - 1].end).toBe(count)
      for (let s = 1; s < slices; s++) expect(ranges[s].start).toBe(ranges[s - 1].end)
      for (const r of ranges) if (r.end < count) expect(r.end % align).toBe(0)
    }
  })

  it('each slice has 2f+1 distinct replicas and each member replicates 2f+1 slices', () => {
    for (const [members, f] of [[4, 1], [16, 1], [16, 3], [7, 3]]) {
      const load = new Array(members).fill(0)
      for (let s = 0; s < members; s++) {
        const replicas = sliceReplicas(s, members, f)
        expect(new Set(replicas).size).toBe(2 * f + 1)
        for (const r of replicas) load[r]++
      }
      expect(load.every((n) => n === 2 * f + 1)).toBe(true)
    }
    expect(() => sliceReplicas(0, 2, 1)).toThrow(RangeError)
  })
})

describe('reduceScatterAggregate', () => {
  const d = 10_007
  const gradients = vectors(8, d, 1)
  for (const rule of ['trimmed-mean', 'median', 'mean'] as const) {
    it(`equals ${rule} over the whole vectors, bit for bit`, () => {
      const aggregator = createAggregator(AggregationConfigSchema.parse({ rule, f: 1 }))
      expect(same(reduceScatterAggregate(gradients, { aggregator, f: 1, align: 512 }), aggregator.aggregate(gradients))).toBe(true)
    })
  }

  it('a corrupt replica per slice (f = 1) changes nothing; two can', () => {
    const aggregator = createAggregator(AggregationConfigSchema.parse({ rule: 'trimmed-mean', f: 1 }))
    const honest = aggregator.aggregate(gradients)
    const poison = (h: Float32Array): Float32Array => h.map((v) => -1e6 * v)
    const one = reduceScatterAggregate(gradients, { aggregator, f: 1, corrupt: (replica, _slice, h) => replica === 3 ? poison(h) : undefined })
    expect(same(one, honest)).toBe(true)
    const two = reduceScatterAggregate(gradients, { aggregator, f: 1, corrupt: (replica, _slice, h) => replica === 3 || replica === 4 ? poison(h) : undefined })
    expect(same(two, honest)).toBe(false)
  })
})
