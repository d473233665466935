import { describe, expect, it } from 'vitest'
import { AggregationConfigSchema, AttackConfigSchema, type AggregationConfig } from '../../config/job-config.js'
import { createAggregator } from '../../ml/aggregate/index.js'
import { applyAttack } from '../../ml/attacks/index.js'
import { createRng } from '../../ml/core/rng.js'

const d = 1000

function l2 (a: Float32Array | Float64Array): number {
  let s = 0
  for (let j = 0; j < a.length; j++) s += a[j] * a[j]
  return Math.sqrt(s)
}

function relativeError (got: Float32Array, want: Float64Array): number {
  const diff = new Float64Array(d)
  for (let j = 0; j < d; j++) diff[j] = got[j] - want[j]
  return l2(diff) / l2(want)
}

/** honest gradients: a true vector plus N(0, 0.1^2) noise each; and their mean */
function honestSet (count: number, seed: number): { honest: Float32Array[], honestMean: Float64Array } {
  const rng = createRng(seed)
  const truth = Float32Array.from({ length: d }, () => rng.nextNormal())
  const honest = Array.from({ length: count }, () => truth.map((t) => t + 0.1 * rng.nextNormal()))
  const honestMean = new Float64Array(d)
  for (const g of honest) for (let j = 0; j < d; j++) honestMean[j] += g[j] / count
  return { honest, honestMean }
}

const robustRules: AggregationConfig[] = [
  AggregationConfigSchema.parse({ rule: 'trimmed-mean', f: 1 }),
  AggregationConfigSchema.parse({ rule: 'median', f: 1 }),
  AggregationConfigSchema.parse({ rule: 'mean-around-median', f: 1 }),
  AggregationConfigSchema.parse({ rule: 'krum', f: 1 }),
  AggregationConfigSchema.parse({ rule: 'multi-krum', f: 1 }),
  // honest gradients sit ~3.2 from the median (0.1 * sqrt(1000)); radius a bit above that
  AggregationConfigSchema.parse({ rule: 'centered-clip', f: 1, clipRadius: 5, clipIterations: 3 })
]

const attacks = [
  AttackConfigSchema.parse({ peers: ['x'], kind: 'sign-flip', magnitude: 10 }),
  AttackConfigSchema.parse({ peers: ['x'], kind: 'scale', magnitude: 1e4 }),
  AttackConfigSchema.parse({ peers: ['x'], kind: 'gaussian', magnitude: 10 })
]

describe('one Byzantine peer among five honest ones (n = 6, f = 1)', () => {
  for (const attack of attacks) {
    it(`${attack.kind} x${attack.magnitude}: robust rules stay near the honest mean, plain mean does not`, () => {
      const { honest, honestMean } = honestSet(5, 41)
      const byzantine = applyAttack(attack, honest[0], { step: 3, seed: 77 })
      // the attacker's position in the (sender-sorted) input order must not matter
      for (const position of [0, 2, 5]) {
        const inputs = [...honest]
        inputs.splice(position, 0, byzantine)
        const meanError = relativeError(createAggregator(AggregationConfigSchema.parse({ rule: 'mean' })).aggregate(inputs), honestMean)
        expect(meanError).toBeGreaterThan(1)
        for (const config of robustRules) {
          const error = relativeError(createAggregator(config).aggregate(inputs), honestMean)
          if (!(error < 0.15)) expect.fail(`${config.rule} (attacker at ${position}): relative error ${error}`)
        }
      }
    })
  }
})

describe('two colluding peers among five honest ones (n = 7, f = 2)', () => {
  it('robust rules ignore the colluders although they agree exactly', () => {
    const { honest, honestMean } = honestSet(5, 43)
    const attack = AttackConfigSchema.parse({ peers: ['a', 'b'], kind: 'collude', magnitude: 10 })
    const c1 = applyAttack(attack, honest[0], { step: 9, seed: 1234 })
    const c2 = applyAttack(attack, honest[1], { step: 9, seed: 1234 })
    const inputs = [c1, ...honest.slice(0, 3), c2, ...honest.slice(3)]
    expect(relativeError(createAggregator(AggregationConfigSchema.parse({ rule: 'mean', f: 2 })).aggregate(inputs), honestMean))
      .toBeGreaterThan(1)
    for (const rule of ['trimmed-mean', 'median', 'krum', 'multi-krum', 'centered-clip'] as const) {
      const config = AggregationConfigSchema.parse({ rule, f: 2, clipRadius: 5 })
      const error = relativeError(createAggregator(config).aggregate(inputs), honestMean)
      if (!(error < 0.2)) expect.fail(`${rule}: relative error ${error}`)
    }
  })
})
