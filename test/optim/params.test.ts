import { describe, expect, it } from 'vitest'
import { allFinite, createLayout, l2Norm, parameterView } from '../../ml/params.js'

describe('parameter layout helpers', () => {
  it('lays tensors out back to back and views them without copying', () => {
    const layout = createLayout([{ name: 'w', shape: [3, 4] }, { name: 'b', shape: [3] }, { name: 'scalar', shape: [] }])
    expect(layout.totalSize).toBe(16)
    expect(layout.specs.map((s) => [s.name, s.offset, s.size])).toEqual([['w', 0, 12], ['b', 12, 3], ['scalar', 15, 1]])
    const params = Float32Array.from({ length: 16 }, (_, i) => i)
    const b = parameterView(params, layout.specs[1])
    expect(Array.from(b)).toEqual([12, 13, 14])
    b[0] = -1
    expect(params[12]).toBe(-1)
  })

  it('measures norms and spots NaN and infinities', () => {
    expect(l2Norm(Float32Array.of(3, 4))).toBe(5)
    expect(l2Norm(new Float32Array(0))).toBe(0)
    expect(allFinite(Float32Array.of(1, -2, 3e38))).toBe(true)
    expect(allFinite(Float32Array.of(1, NaN))).toBe(false)
    expect(allFinite(Float32Array.of(-Infinity, 0))).toBe(false)
  })

  it('allFinite finds one non-finite value at every position of the unrolled loop and its tail, in views too', () => {
    const edge = [0, -0, 1.401298464324817e-45, -3.4028234663852886e38, 3.4028234663852886e38, 1, -1]
    for (const length of [1, 3, 4, 5, 7, 8, 9, 11, 16, 17]) {
      const values = Float32Array.from({ length }, (_, i) => edge[i % edge.length])
      expect(allFinite(values)).toBe(true)
      for (let at = 0; at < length; at++) {
        for (const bad of [NaN, Infinity, -Infinity]) {
          const copy = values.slice()
          copy[at] = bad
          expect(allFinite(copy), `${bad} at ${at} of ${length}`).toBe(false)
        }
      }
    }
    // a sum over float32's largest values stays finite in float64; +Inf and -Inf together are not
    expect(allFinite(new Float32Array(1_000_000).fill(3.4028234663852886e38))).toBe(true)
    expect(allFinite(Float32Array.of(Infinity, 1, 2, 3, 4, 5, 6, 7, -Infinity))).toBe(false)
    // a view that starts past its buffer's first value, with a bad value just outside it
    const buffer = Float32Array.of(NaN, 1, 2, 3, 4, 5, Infinity)
    expect(allFinite(buffer.subarray(1, 6))).toBe(true)
    expect(allFinite(buffer.subarray(1, 7))).toBe(false)
  })
})
