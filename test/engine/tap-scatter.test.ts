/**
 * scatterTaps' three paths against the definition gradient[offset + i kernelTaps + t] =
 * compact[i columns + c] for every tap t of column c, other taps untouched: taps picked one per
 * column (lower-convs' selections), one column for every tap (broadcast-gemm's sum), and columns
 * of several taps each.
 */
import { describe, expect, it } from 'vitest'
import { scatterTaps, type TapScatter } from '../../ml/autodiff/tap-selections.js'

function byDefinition(compact: Float32Array, scatter: TapScatter, length: number, offset: number): Float32Array {
  const out = new Float32Array(length).fill(-1)
  const used = scatter.columns.length
  for (let i = 0; i < compact.length / used; i++) {
    scatter.columns.forEach((taps, c) => { for (const t of taps) out[offset + i * scatter.kernelTaps + t] = compact[i * used + c] })
  }
  return out
}

describe('scatterTaps writes a compact tap gradient into its kernel slice', () => {
  const cases: Array<[string, TapScatter]> = [
    ['one tap', { kernelTaps: 9, columns: [[4]] }],
    ['a selection of taps', { kernelTaps: 9, columns: [[4], [5], [7], [8]] }],
    ['one column for every tap', { kernelTaps: 9, columns: [[0, 1, 2, 3, 4, 5, 6, 7, 8]] }],
    ['columns of several taps', { kernelTaps: 6, columns: [[0, 2], [5], [1, 3]] }]
  ]
  for (const [name, scatter] of cases) {
    it(name, () => {
      const rows = 7
      const offset = 3
      const compact = Float32Array.from({ length: rows * scatter.columns.length }, (_, i) => i + 0.5)
      const length = offset + rows * scatter.kernelTaps + 2
      const gradient = new Float32Array(length).fill(-1)
      scatterTaps(compact, scatter, gradient, offset)
      expect(Array.from(gradient)).toEqual(Array.from(byDefinition(compact, scatter, length, offset)))
    })
  }
})
