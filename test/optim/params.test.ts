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
})
