import { describe, expect, it } from 'vitest'
import type { z } from 'zod'
import { AggregationConfigSchema } from '../../config/job-config.js'
import { AggregationInputError, createAggregator, InsufficientPeersError, krumScores } from '../../ml/aggregate/index.js'
import { meanInJs, medianInJs, trimmedMeanInJs } from '../../ml/aggregate/coordinate-wise.js'
import { meanAroundMedianInJs } from '../../ml/aggregate/mean-around-median.js'
import { aggregateRankedColumns, MAX_RANKED_INPUTS, rankedColumnsAvailable } from '../../ml/aggregate/ranked-columns.js'
import { forEachSortedBlock, SORTED_BLOCK } from '../../ml/aggregate/sorted-columns.js'
import { createRng } from '../../ml/core/rng.js'

type AggregationConfigInput = z.input<typeof AggregationConfigSchema>

const agg = (input: Partial<AggregationConfigInput>) => createAggregator(AggregationConfigSchema.parse(input))
const vecs = (...rows: number[][]) => rows.map((r) => Float32Array.from(r))
const list = (a: Float32Array) => Array.from(a)

describe('exact values on small inputs', () => {
  it('mean', () => {
    expect(list(agg({ rule: 'mean' }).aggregate(vecs([1, 2, -3], [3, 4, 5])))).toEqual([2, 3, 1])
    expect(list(agg({ rule: 'mean' }).aggregate(vecs([7, -1])))).toEqual([7, -1])
  })

  it('trimmed mean drops f values per side and coordinate', () => {
    const g = vecs([1, 0, 5], [100, 0, 5], [3, 0, 5], [-50, 0, -1e30], [2, 0, 6])
    expect(list(agg({ rule: 'trimmed-mean', f: 1 }).aggregate(g))).toEqual([2, 0, 5])
    expect(list(agg({ rule: 'trimmed-mean', f: 2 }).aggregate(g))).toEqual([2, 0, 5])
    // f = 0 is the plain mean
    expect(list(agg({ rule: 'trimmed-mean', f: 0 }).aggregate(vecs([1, 2], [3, 8])))).toEqual([2, 5])
    // a huge outlier does not swallow the others' precision (it is dropped, not subtracted)
    expect(list(agg({ rule: 'trimmed-mean', f: 1 }).aggregate(vecs([3e38], [1e-7], [2e-7]))).map(Math.fround))
      .toEqual([Math.fround(2e-7)])
  })

  it('trimmed mean and median match a sort-based reference for n = 1..16 and every valid f (ties included)', () => {
    const rng = createRng(17)
    for (let n = 1; n <= 16; n++) {
      const g = Array.from({ length: n }, () => Float32Array.from({ length: 50 }, () => rng.nextInt(7) - 3 + (rng.nextFloat() < 0.1 ? 1e6 : 0)))
      for (let f = 0; 2 * f < n; f++) {
        const trimmed = agg({ rule: 'trimmed-mean', f }).aggregate(g)
        const median = agg({ rule: 'median', f }).aggregate(g)
        for (let j = 0; j < 50; j++) {
          const sorted = g.map((x) => x[j]).sort((a, b) => a - b)
          const kept = sorted.slice(f, n - f)
          // integer inputs: every sum is exact in float64, whatever the summation order
          expect(trimmed[j]).toBe(Math.fround(kept.reduce((a, b) => a + b, 0) / kept.length))
          const mid = n >> 1
          expect(median[j]).toBe(Math.fround(n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2))
        }
      }
    }
  })

  it('trimmed mean of three to five inputs and the median of four and five (their own paths) equal the sorted-blocks result to the bit for every f: signs, zeros, subnormals, extremes, ties', () => {
    const rng = createRng(29)
    const special = [0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1, -1, 0.5]
    const d = 3 * SORTED_BLOCK + 11
    let negativeZeros = 0
    for (let n = 3; n <= 5; n++) {
      const g = Array.from({ length: n }, () => Float32Array.from({ length: d }, () =>
        rng.nextFloat() < 0.3 ? special[rng.nextInt(special.length)] : rng.nextNormal() * Math.exp(4 * rng.nextNormal())))
      for (let f = 0; 2 * f < n; f++) {
        const expected = new Float32Array(d)
        forEachSortedBlock(g, d, (rows, start, length) => {
          for (let j = 0; j < length; j++) {
            let sum = 0
            for (let r = f; r < n - f; r++) sum += rows[r * SORTED_BLOCK + j]
            expected[start + j] = sum / (n - 2 * f)
          }
        })
        const got = agg({ rule: 'trimmed-mean', f }).aggregate(g)
        // byte equality: -0 and +0 count as different
        expect(new Uint8Array(got.buffer), `n = ${n}, f = ${f}`).toEqual(new Uint8Array(expected.buffer))
        negativeZeros += got.filter((v) => Object.is(v, -0)).length
      }
      // the median of 4 and 5 takes the same path
      const expectedMedian = new Float32Array(d)
      const mid = n >> 1
      forEachSortedBlock(g, d, (rows, start, length) => {
        for (let j = 0; j < length; j++) {
          expectedMedian[start + j] = n % 2 === 1 ? rows[mid * SORTED_BLOCK + j] : (rows[(mid - 1) * SORTED_BLOCK + j] + rows[mid * SORTED_BLOCK + j]) / 2
        }
      })
      const median = agg({ rule: 'median', f: 1 }).aggregate(g)
      if (n > 3) expect(new Uint8Array(median.buffer), `median of ${n}`).toEqual(new Uint8Array(expectedMedian.buffer))
    }
    // a sum from +0 is -0 only where a division underflows: the cases above must include some
    expect(negativeZeros).toBeGreaterThan(0)

    // float32 values summed in float64 are exact unless they span more than 29 binary orders, so
    // the order of the kept ranks rarely shows; here it does: ascending, -2^54 + 1 rounds to -2^54
    // and the sum is 0; with 1 added after one 2^53 it is 1 and the mean 0.25. Every input order.
    const values = [-(2 ** 54), 1, 2 ** 53, 2 ** 53]
    const orders = values.flatMap((_, i) => values.flatMap((_, j) => values.flatMap((_, k) =>
      new Set([i, j, k]).size === 3 ? [[i, j, k, 6 - i - j - k]] : [])))
    const columns = Array.from({ length: 4 }, (_, input) => Float32Array.from(orders, (order) => values[order[input]]))
    expect(Array.from(agg({ rule: 'trimmed-mean', f: 0 }).aggregate(columns))).toEqual(orders.map(() => 0))
  })

  it('the WebAssembly kernel (3 to 15 inputs, the mean 2 to 15) gives the JS paths\' trimmed mean, median, mean around the median and mean to the bit, and the rules use it on long gradients', () => {
    expect(rankedColumnsAvailable(4)).toBe(true)
    expect(rankedColumnsAvailable(2)).toBe(false)
    expect(rankedColumnsAvailable(2, { kind: 'mean' })).toBe(true)
    expect(rankedColumnsAvailable(MAX_RANKED_INPUTS + 1)).toBe(false)
    /** the first coordinate whose bits differ (-0 against +0 included), or undefined */
    const firstDifference = (got: Float32Array, expected: Float32Array): string | undefined => {
      const [a, b] = [got, expected].map((x) => new Int32Array(x.buffer, x.byteOffset, x.length))
      if (a.length !== b.length) return `${a.length} values against ${b.length}`
      const j = a.findIndex((bits, i) => bits !== b[i])
      return j < 0 ? undefined : `coordinate ${j}: ${got[j]} against ${expected[j]}`
    }
    const rng = createRng(41)
    const special = [0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1, -1, 0.5]
    // two whole blocks of 2048, a partial one, and a tail that is not a multiple of four
    const d = 2 * 2048 + 1027
    for (let n = 2; n <= MAX_RANKED_INPUTS; n++) {
      const g = Array.from({ length: n }, () => Float32Array.from({ length: d }, () =>
        rng.nextFloat() < 0.3 ? special[rng.nextInt(special.length)] : rng.nextNormal() * Math.exp(4 * rng.nextNormal())))
      const mean = meanInJs(g, d)
      expect(firstDifference(aggregateRankedColumns(g, d, { kind: 'mean' }, new Float32Array(d)), mean), `mean n = ${n}`).toBeUndefined()
      expect(firstDifference(agg({ rule: 'mean' }).aggregate(g), mean), `the mean rule, n = ${n}`).toBeUndefined()
      if (n === 2) continue
      for (let f = 0; 2 * f < n; f++) {
        const expected = trimmedMeanInJs(g, d, f)
        expect(firstDifference(aggregateRankedColumns(g, d, { kind: 'trimmed-mean', f }, new Float32Array(d)), expected), `trimmed mean n = ${n}, f = ${f}`).toBeUndefined()
        expect(firstDifference(agg({ rule: 'trimmed-mean', f }).aggregate(g), expected), `the rule, n = ${n}, f = ${f}`).toBeUndefined()
        const around = meanAroundMedianInJs(g, d, f)
        expect(firstDifference(aggregateRankedColumns(g, d, { kind: 'mean-around-median', f }, new Float32Array(d)), around), `mean around the median n = ${n}, f = ${f}`).toBeUndefined()
        expect(firstDifference(agg({ rule: 'mean-around-median', f }).aggregate(g), around), `that rule, n = ${n}, f = ${f}`).toBeUndefined()
      }
      const median = medianInJs(g, d)
      if (n === 3) {
        // the JS median of three is a clamp, whose zeros' signs follow the input order: the same values
        const kernel = agg({ rule: 'median', f: 1 }).aggregate(g)
        expect(firstDifference(kernel, aggregateRankedColumns(g, d, { kind: 'median' }, new Float32Array(d)))).toBeUndefined()
        expect(Array.from(kernel).findIndex((v, j) => v !== median[j])).toBe(-1)
        continue
      }
      expect(firstDifference(aggregateRankedColumns(g, d, { kind: 'median' }, new Float32Array(d)), median), `median n = ${n}`).toBeUndefined()
      expect(firstDifference(agg({ rule: 'median', f: 1 }).aggregate(g), median), `the median rule, n = ${n}`).toBeUndefined()
    }
    // an output inside a larger array (reduce-scatter writes slices): only its range is written
    const g = Array.from({ length: 4 }, (_, i) => Float32Array.from({ length: 5000 }, (_, j) => (j % 97) * (i + 1) - 40))
    const whole = new Float32Array(5010).fill(7)
    aggregateRankedColumns(g, 5000, { kind: 'trimmed-mean', f: 1 }, whole.subarray(5, 5005))
    expect(Array.from(whole.subarray(0, 5))).toEqual([7, 7, 7, 7, 7])
    expect(Array.from(whole.subarray(5005))).toEqual([7, 7, 7, 7, 7])
    expect(firstDifference(whole.subarray(5, 5005), trimmedMeanInJs(g, 5000, 1))).toBeUndefined()
    expect(() => aggregateRankedColumns(g, 5000, { kind: 'trimmed-mean', f: 2 }, new Float32Array(5000))).toThrow(/trims f < 2 per side, got f = 2/)
  })

  it('mean around the median keeps the n - f values nearest the median, whichever side the outliers are on', () => {
    // f = 2 of 5: column 0 (median 2) drops 100 and -50; column 1 (median 12) drops 1e30, then 10
    const g = vecs([1, 10], [100, 11], [3, 12], [-50, 13], [2, 1e30])
    expect(list(agg({ rule: 'mean-around-median', f: 2 }).aggregate(g))).toEqual([2, 12])
    // f = 1: one outlier on one side is dropped, both honest extremes stay (a trimmed mean drops 1 or 10 too)
    const oneSided = vecs([1], [2], [3], [10], [-1000])
    expect(list(agg({ rule: 'mean-around-median', f: 1 }).aggregate(oneSided))).toEqual([4])
    expect(list(agg({ rule: 'trimmed-mean', f: 1 }).aggregate(oneSided))).toEqual([2])
    // f = 0 is the plain mean; a tie in distance drops the upper end
    expect(list(agg({ rule: 'mean-around-median', f: 0 }).aggregate(vecs([1, 2], [3, 8])))).toEqual([2, 5])
    expect(list(agg({ rule: 'mean-around-median', f: 1 }).aggregate(vecs([0], [1], [2])))).toEqual([0.5])
  })

  it('mean around the median matches a sort-based reference for n = 1..16 and every valid f', () => {
    const rng = createRng(23)
    for (let n = 1; n <= 16; n++) {
      const g = Array.from({ length: n }, () => Float32Array.from({ length: 40 }, () => rng.nextInt(9) - 4 + (rng.nextFloat() < 0.1 ? 1e6 * (rng.nextFloat() < 0.5 ? -1 : 1) : 0)))
      for (let f = 0; 2 * f < n; f++) {
        const got = agg({ rule: 'mean-around-median', f }).aggregate(g)
        for (let j = 0; j < 40; j++) {
          const sorted = g.map((x) => x[j]).sort((a, b) => a - b)
          const mid = n >> 1
          const median = n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
          // stable by distance, ties to the lower value: the kept set is the same as the rule's
          const kept = sorted.map((v, i) => ({ v, i })).sort((a, b) => Math.abs(a.v - median) - Math.abs(b.v - median) || a.i - b.i).slice(0, n - f)
          const want = Math.fround(kept.reduce((a, b) => a + b.v, 0) / (n - f))
          if (got[j] !== want) expect.fail(`n ${n} f ${f} column ${j}: got ${got[j]}, want ${want} from ${sorted.join(' ')}`)
        }
      }
    }
  })

  it('median, odd and even n', () => {
    expect(list(agg({ rule: 'median', f: 1 }).aggregate(vecs([1, 9], [5, -2], [3, 4])))).toEqual([3, 4])
    expect(list(agg({ rule: 'median', f: 1 }).aggregate(vecs([1, 0], [4, 0], [2, 1], [3, 1])))).toEqual([2.5, 0.5])
  })

  it('krum scores, krum and multi-krum (ties to the lower index)', () => {
    const g = vecs([0], [1], [2], [3], [100])
    // f = 1, n = 5: sum of the 2 nearest squared distances
    expect(Array.from(krumScores(g, 1, 1))).toEqual([1 + 4, 1 + 1, 1 + 1, 4 + 1, 97 ** 2 + 98 ** 2])
    expect(list(agg({ rule: 'krum', f: 1 }).aggregate(g))).toEqual([1])
    expect(list(agg({ rule: 'multi-krum', f: 1 }).aggregate(g))).toEqual([1.5]) // m = n - f = 4: 0,1,2,3
    expect(list(agg({ rule: 'multi-krum', f: 1, multiKrumM: 3 }).aggregate(g))).toEqual([1]) // 1, 2 and 0 (tie with 3)
    expect(list(agg({ rule: 'multi-krum', f: 1, multiKrumM: 99 }).aggregate(g))).toEqual([1.5]) // capped at n - f
  })

  it('krum picks the densest vector in several dimensions and returns a copy', () => {
    const g = vecs([0, 0], [0.1, 0], [0, 0.1], [0.05, 0.05], [10, -10])
    const out = agg({ rule: 'krum', f: 1 }).aggregate(g)
    expect(list(out)).toEqual(list(g[3]))
    out[0] = 42
    expect(g[3][0]).toBe(Math.fround(0.05))
  })

  it('centered clipping clips each difference to the radius around the centre', () => {
    const cc = agg({ rule: 'centered-clip', f: 1, clipRadius: 1, clipIterations: 1 })
    // centre (0, 0): (3, 4) clips to (0.6, 0.8); (0.5, 0) and (0, -0.2) are within the radius
    const out = cc.aggregate(vecs([3, 4], [0.5, 0], [0, -0.2]), { centre: Float32Array.from([0, 0]) })
    expect(list(out)).toEqual([(0.6 + 0.5) / 3, (0.8 - 0.2) / 3].map(Math.fround))
    // default centre is the coordinate-wise median (0.5, 0); every point within radius -> the mean
    const big = agg({ rule: 'centered-clip', f: 1, clipRadius: 1e9, clipIterations: 1 })
    expect(list(big.aggregate(vecs([3, 4], [0.5, 0], [0, -0.2])))).toEqual([3.5 / 3, 3.8 / 3].map(Math.fround))
    // two iterations: the second starts from the first result
    const two = agg({ rule: 'centered-clip', f: 0, clipRadius: 1, clipIterations: 2 })
      .aggregate(vecs([10], [0]), { centre: Float32Array.from([0]) })
    // it1: v = 0 + (1 + 0) / 2 = 0.5; it2: diffs 9.5 -> 1, -0.5 -> -0.5; v = 0.5 + 0.25 = 0.75
    expect(list(two)).toEqual([0.75])
  })
})

describe('input count and shape', () => {
  const cases: Array<[NonNullable<AggregationConfigInput['rule']>, number, number]> = [
    ['mean', 3, 1], ['trimmed-mean', 1, 3], ['trimmed-mean', 2, 5], ['median', 2, 5], ['mean-around-median', 1, 3],
    ['centered-clip', 1, 3], ['krum', 1, 5], ['multi-krum', 2, 7]
  ]
  for (const [rule, f, needed] of cases) {
    it(`${rule} with f=${f} needs ${needed} inputs`, () => {
      const a = agg({ rule, f })
      expect(a.rule).toBe(rule)
      expect(a.minInputs()).toBe(needed)
      const g = Array.from({ length: needed }, (_, i) => Float32Array.from([i, -i]))
      expect(a.aggregate(g).length).toBe(2)
      let error: unknown
      try { a.aggregate(g.slice(1)) } catch (e) { error = e }
      expect(error).toBeInstanceOf(InsufficientPeersError)
      expect((error as InsufficientPeersError).needed).toBe(needed)
      expect((error as Error).message).toContain(`${rule} with f=${f} needs at least ${needed} gradients`)
      expect((error as Error).message).toContain(`got ${needed - 1}`)
    })
  }

  it('rejects gradients of different lengths and a centre of the wrong length', () => {
    expect(() => agg({ rule: 'median', f: 1 }).aggregate(vecs([1, 2], [1, 2], [1]))).toThrow(AggregationInputError)
    expect(() => agg({ rule: 'median', f: 1 }).aggregate(vecs([1, 2], [1, 2], [1]))).toThrow(/gradient 2 has 1 values/)
    expect(() => agg({ rule: 'centered-clip', f: 0 }).aggregate(vecs([1, 2]), { centre: new Float32Array(3) }))
      .toThrow(/centre has 3 values/)
  })
})
