import { describe, expect, it } from 'vitest'
import { AttackConfigSchema } from '../../config/job-config.js'
import { applyAttack } from '../../ml/attacks/index.js'
import { createRng } from '../../ml/core/rng.js'

const attack = (kind: 'sign-flip' | 'gaussian' | 'scale' | 'collude', magnitude: number) =>
  AttackConfigSchema.parse({ peers: ['peer-b'], kind, magnitude })
const honestGradient = (seed: number, d = 20_000) => {
  const rng = createRng(seed)
  return Float32Array.from({ length: d }, () => rng.nextNormal())
}
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer))

describe('applyAttack', () => {
  it('sign-flip and scale multiply the honest gradient, leaving it untouched', () => {
    const g = Float32Array.from([1, -2, 0.5])
    expect(Array.from(applyAttack(attack('sign-flip', 10), g, { step: 0, seed: 1 }))).toEqual([-10, 20, -5])
    expect(Array.from(applyAttack(attack('scale', 3), g, { step: 0, seed: 1 }))).toEqual([3, -6, 1.5])
    expect(Array.from(g)).toEqual([1, -2, 0.5])
  })

  it('gaussian replaces the gradient by N(0, magnitude^2) noise, reproducible from (seed, step)', () => {
    const g = honestGradient(1)
    const a = applyAttack(attack('gaussian', 5), g, { step: 4, seed: 9 })
    expect(same(a, applyAttack(attack('gaussian', 5), honestGradient(2), { step: 4, seed: 9 }))).toBe(true)
    expect(same(a, applyAttack(attack('gaussian', 5), g, { step: 5, seed: 9 }))).toBe(false)
    expect(same(a, applyAttack(attack('gaussian', 5), g, { step: 4, seed: 10 }))).toBe(false)
    let sum = 0
    let sumSq = 0
    let dot = 0
    for (let j = 0; j < a.length; j++) { sum += a[j]; sumSq += a[j] * a[j]; dot += a[j] * g[j] }
    const n = a.length
    expect(Math.abs(sum / n)).toBeLessThan(5 * 5 / Math.sqrt(n))
    expect(Math.abs(Math.sqrt(sumSq / n) - 5)).toBeLessThan(0.1)
    // uncorrelated with the honest gradient
    expect(Math.abs(dot / Math.sqrt(sumSq) / Math.sqrt(g.reduce((s, x) => s + x * x, 0)))).toBeLessThan(0.05)
  })

  it('collude: peers with different honest gradients send the same +-magnitude vector for a (seed, step)', () => {
    const a = applyAttack(attack('collude', 2.5), honestGradient(1), { step: 7, seed: 42 })
    const b = applyAttack(attack('collude', 2.5), honestGradient(2), { step: 7, seed: 42 })
    expect(same(a, b)).toBe(true)
    expect(a.every((x) => x === 2.5 || x === -2.5)).toBe(true)
    const positive = a.filter((x) => x > 0).length
    expect(Math.abs(positive / a.length - 0.5)).toBeLessThan(0.02)
    expect(same(a, applyAttack(attack('collude', 2.5), honestGradient(1), { step: 8, seed: 42 }))).toBe(false)
  })
})
