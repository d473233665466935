import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import { forEachSortedBlock, oddEvenMergeNetwork, SORTED_BLOCK } from '../../ml/aggregate/sorted-columns.js'

describe('coordinate-wise sorting', () => {
  it('the odd-even merge network sorts every 0-1 input for n = 1..16 (so every input, by the 0-1 principle)', () => {
    for (let n = 1; n <= 16; n++) {
      const network = oddEvenMergeNetwork(n)
      for (let c = 0; c < network.length; c += 2) expect(network[c]).toBeLessThan(network[c + 1])
      for (let mask = 0; mask < 1 << n; mask++) {
        const v = Array.from({ length: n }, (_, i) => (mask >> i) & 1)
        for (let c = 0; c < network.length; c += 2) {
          const [a, b] = [v[network[c]], v[network[c + 1]]]
          v[network[c]] = Math.min(a, b)
          v[network[c + 1]] = Math.max(a, b)
        }
        expect(v.every((x, i) => i === 0 || v[i - 1] <= x)).toBe(true)
      }
    }
  })

  it('gives each coordinate its values in ascending order, across blocks and a partial last one, signs, zeros, subnormals and extremes included', () => {
    const rng = createRng(23)
    const special = [0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1, -1]
    for (const n of [1, 2, 3, 4, 5, 7, 8, 13]) {
      const d = 2 * SORTED_BLOCK + 37
      const gradients = Array.from({ length: n }, () => Float32Array.from({ length: d }, () =>
        rng.nextFloat() < 0.2 ? special[rng.nextInt(special.length)] : rng.nextNormal() * Math.exp(4 * rng.nextNormal())))
      const seen = new Set<number>()
      forEachSortedBlock(gradients, d, (rows, start, length) => {
        expect(length).toBe(Math.min(SORTED_BLOCK, d - start))
        for (let j = 0; j < length; j++) {
          seen.add(start + j)
          // -0 sorts before +0 (the keys order them as their bits do)
          const expected = gradients.map((g) => g[start + j]).sort((a, b) => a - b || Number(Object.is(b, -0)) - Number(Object.is(a, -0)))
          const got = Array.from({ length: n }, (_, r) => rows[r * SORTED_BLOCK + j])
          expect(got).toEqual(expected)
        }
      })
      expect(seen.size).toBe(d)
    }
  })
})
