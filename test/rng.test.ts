import { describe, expect, it } from 'vitest'
import { createRng, deriveSeed } from '../ml/core/rng.js'

describe('createRng', () => {
  it('is reproducible from its seed and differs across seeds', () => {
    const a = createRng(42)
    const b = createRng(42)
    const c = createRng(43)
    const seqA = Array.from({ length: 8 }, () => a.nextUint32())
    const seqB = Array.from({ length: 8 }, () => b.nextUint32())
    const seqC = Array.from({ length: 8 }, () => c.nextUint32())
    expect(seqA).toEqual(seqB)
    expect(seqA).not.toEqual(seqC)
  })

  it('produces uniform floats in [0, 1) and standard normals', () => {
    const rng = createRng(7)
    let sum = 0
    let sumSq = 0
    const n = 20000
    for (let i = 0; i < n; i++) {
      const u = rng.nextFloat()
      expect(u).toBeGreaterThanOrEqual(0)
      expect(u).toBeLessThan(1)
      const z = rng.nextNormal()
      sum += z
      sumSq += z * z
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.03)
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.05)
  })

  it('derives distinct seeds per part', () => {
    expect(deriveSeed(1, 2)).not.toBe(deriveSeed(1, 3))
    expect(deriveSeed(1, 2, 3)).toBe(deriveSeed(1, 2, 3))
  })
})
