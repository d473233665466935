import { describe, expect, it } from 'vitest'
import { OptimizerConfigSchema, type OptimizerConfig } from '../../config/job-config.js'
import { createRng } from '../../ml/core/rng.js'
import { createOptimizer, OptimizerConfigError, OptimizerStateError, type Optimizer } from '../../ml/optim/index.js'

const sgd = (o: Partial<Extract<OptimizerConfig, { type: 'sgd' }>>): OptimizerConfig => OptimizerConfigSchema.parse({ type: 'sgd', momentum: 0, ...o })
const adam = (o: Partial<Extract<OptimizerConfig, { type: 'adam' }>>): OptimizerConfig => OptimizerConfigSchema.parse({ type: 'adam', ...o })

/** Runs a one-parameter optimizer over a list of gradients; returns the parameter after each step. */
function trajectory(config: OptimizerConfig, theta0: number, grads: number[], lr: number): number[] {
  const opt = createOptimizer(config, 1)
  const p = Float32Array.of(theta0)
  return grads.map((g) => { opt.step(p, Float32Array.of(g), lr); return p[0] })
}

/** 6 digits: within 5e-7, a few float32 ulps at these magnitudes (params are stored as float32) */
function expectClose(actual: number[], expected: number[], digits = 6): void {
  expect(actual.length).toBe(expected.length)
  actual.forEach((a, i) => { expect(a).toBeCloseTo(expected[i], digits) })
}

describe('SGD, by hand from torch.optim.SGD', () => {
  // theta = 1, constant gradient 0.5, lr 0.1
  it('plain: theta -= lr * g', () => {
    expectClose(trajectory(sgd({}), 1, [0.5, 0.5, -2], 0.1), [0.95, 0.9, 1.1])
  })

  it('momentum 0.9: b1 = g, then b = 0.9 b + g; theta -= lr * b', () => {
    // b: 0.5, 0.95, 1.355 -> theta: 0.95, 0.855, 0.7195
    expectClose(trajectory(sgd({ momentum: 0.9 }), 1, [0.5, 0.5, 0.5], 0.1), [0.95, 0.855, 0.7195])
  })

  it('nesterov: theta -= lr * (g + 0.9 b)', () => {
    // g + 0.9 b: 0.95, 1.355, 1.7195 -> theta: 0.905, 0.7695, 0.59755
    expectClose(trajectory(sgd({ momentum: 0.9, nesterov: true }), 1, [0.5, 0.5, 0.5], 0.1), [0.905, 0.7695, 0.59755])
  })

  it('weight decay adds wd * theta to the gradient, before momentum', () => {
    // g' = 0.5 + 0.1 theta: 0.6 -> 0.94; 0.594 -> 0.8806
    expectClose(trajectory(sgd({ weightDecay: 0.1 }), 1, [0.5, 0.5], 0.1), [0.94, 0.8806])
    // with momentum: b = 0.6, then 0.9 * 0.6 + 0.594 = 1.134 -> 0.94, 0.8266
    expectClose(trajectory(sgd({ weightDecay: 0.1, momentum: 0.9 }), 1, [0.5, 0.5], 0.1), [0.94, 0.8266])
  })

  it('uses the learning rate of each call (the schedule changes it)', () => {
    const opt = createOptimizer(sgd({ momentum: 0.9 }), 1)
    const p = Float32Array.of(1)
    opt.step(p, Float32Array.of(0.5), 0.1)
    opt.step(p, Float32Array.of(0.5), 0.01)
    // b = 0.5 then 0.95: 1 - 0.05 - 0.0095
    expect(p[0]).toBeCloseTo(0.9405, 6)
  })

  it('refuses nesterov without momentum, as PyTorch does', () => {
    expect(() => createOptimizer(sgd({ nesterov: true, momentum: 0 }), 3)).toThrow(OptimizerConfigError)
    expect(() => createOptimizer(sgd({ nesterov: true, momentum: 0 }), 3)).toThrow(/needs a momentum above 0/)
  })
})

describe('Adam, by hand from torch.optim.Adam', () => {
  it('moves by lr per step under a constant gradient (bias correction makes m_hat = g, v_hat = g^2)', () => {
    expectClose(trajectory(adam({ lr: 0.001 }), 1, [0.5, 0.5, 0.5], 0.001), [0.999, 0.998, 0.997])
  })

  it('bias-corrects m and v separately when the gradient flips', () => {
    // step 2: m = 0.09 - 0.1 = -0.01, v = 0.000999 + 0.001 = 0.001999, bc1 = 0.19, bc2 = 0.001999:
    // m_hat = -0.0526316, v_hat = 1, so theta = 0.999 + 0.001 * 0.0526316
    expectClose(trajectory(adam({}), 1, [1, -1], 0.001), [0.999, 0.9990526316])
  })

  it('adds eps after dividing sqrt(v) by sqrt(bias correction 2)', () => {
    // step 1 with eps 1: denominator 0.5 + 1, update lr * 0.5 / 1.5
    expectClose(trajectory(adam({ eps: 1 }), 1, [0.5], 0.001), [1 - 0.001 / 3])
  })

  it('uses L2 weight decay (added to the gradient, not decoupled as in AdamW)', () => {
    // g = 0, theta = 2, wd 0.1: g' = 0.2 goes through m and v, so Adam moves by lr per step;
    // AdamW would move by lr * wd * theta = 0.0002 (to 1.9998, 1.9996)
    expectClose(trajectory(adam({ weightDecay: 0.1 }), 2, [0, 0], 0.001), [1.999, 1.99800001])
  })
})

/** PyTorch's documented update rules, in float64, as a reference for long random runs. */
function referenceRun(config: OptimizerConfig, params: Float64Array, grads: Float64Array[], lr: number): Float64Array {
  const p = Float64Array.from(params)
  const n = p.length
  const b = new Float64Array(n)
  const m = new Float64Array(n)
  const v = new Float64Array(n)
  grads.forEach((grad, t0) => {
    const t = t0 + 1
    for (let i = 0; i < n; i++) {
      let g = grad[i] + config.weightDecay * p[i]
      if (config.type === 'sgd') {
        if (config.momentum !== 0) {
          b[i] = t === 1 ? g : config.momentum * b[i] + g
          g = config.nesterov ? g + config.momentum * b[i] : b[i]
        }
        p[i] -= lr * g
      } else {
        m[i] = config.beta1 * m[i] + (1 - config.beta1) * g
        v[i] = config.beta2 * v[i] + (1 - config.beta2) * g * g
        const mHat = m[i] / (1 - config.beta1 ** t)
        const vHat = v[i] / (1 - config.beta2 ** t)
        p[i] -= lr * mHat / (Math.sqrt(vHat) + config.eps)
      }
    }
  })
  return p
}

function randomVector(n: number, seed: number, scale: number): Float64Array {
  const rng = createRng(seed)
  return Float64Array.from({ length: n }, () => rng.nextNormal() * scale)
}

describe('long runs against the float64 reference', () => {
  const configs: Array<[string, OptimizerConfig, number]> = [
    ['sgd', sgd({}), 0.05],
    ['sgd momentum + wd', sgd({ momentum: 0.9, weightDecay: 5e-4 }), 0.05],
    ['sgd nesterov', sgd({ momentum: 0.8, nesterov: true }), 0.05],
    ['adam', adam({}), 0.001],
    ['adam betas + wd', adam({ beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.01 }), 0.01]
  ]
  for (const [label, config, lr] of configs) {
    it(`${label}: 20 steps of 1,000 parameters agree to float32 precision`, () => {
      const n = 1000
      const params0 = randomVector(n, 1, 1)
      const grads = Array.from({ length: 20 }, (_, s) => randomVector(n, 100 + s, s % 3 === 0 ? 0.01 : 1))
      const expected = referenceRun(config, params0, grads, lr)
      const opt = createOptimizer(config, n)
      const p = Float32Array.from(params0)
      for (const g of grads) opt.step(p, Float32Array.from(g), lr)
      let worst = 0
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(p[i] - expected[i]))
      expect(worst).toBeLessThan(2e-6)
      // and the run really moved the parameters
      expect(Math.abs(p[0] - params0[0])).toBeGreaterThan(1e-3)
    })
  }
})

describe('optimizer state', () => {
  function run(opt: Optimizer, p: Float32Array, steps: number, seed: number): void {
    for (let s = 0; s < steps; s++) opt.step(p, Float32Array.from(randomVector(p.length, seed + s, 1)), 0.01)
  }

  it('has the documented sizes: SGD momentum n + 1, plain SGD 0, Adam 2n + 1 (with its step count)', () => {
    expect(createOptimizer(sgd({ momentum: 0.9 }), 10).stateSize).toBe(11)
    expect(createOptimizer(sgd({}), 10).stateSize).toBe(0)
    const a = createOptimizer(adam({}), 10)
    expect(a.stateSize).toBe(21)
    const p = new Float32Array(10)
    run(a, p, 3, 0)
    expect(a.exportState()[0]).toBe(3)
    expect(a.exportState().length).toBe(21)
  })

  for (const [label, config] of [['sgd momentum', sgd({ momentum: 0.9, nesterov: true })], ['adam', adam({ weightDecay: 0.01 })]] as const) {
    it(`${label}: a peer that imports the state continues bit for bit like the one that exported it`, () => {
      const n = 257
      const a = createOptimizer(config, n)
      const pa = Float32Array.from(randomVector(n, 5, 1))
      run(a, pa, 4, 10)
      // as shipped to a joining peer: a copy of the bytes
      const shipped = new Float32Array(new Uint8Array(a.exportState().slice().buffer).slice().buffer)
      const pb = pa.slice()
      const b = createOptimizer(config, n)
      b.importState(shipped)
      run(a, pa, 5, 20)
      run(b, pb, 5, 20)
      expect(Buffer.from(pb.buffer).equals(Buffer.from(pa.buffer))).toBe(true)
      // a fresh optimizer (state lost) lands elsewhere: the state matters
      const c = createOptimizer(config, n)
      const pc = pb.slice()
      run(c, pc, 1, 30)
      run(b, pb, 1, 30)
      expect(Buffer.from(pc.buffer).equals(Buffer.from(pb.buffer))).toBe(false)
    })
  }

  it('refuses state of the wrong size or damaged, and vectors of the wrong length', () => {
    const s = createOptimizer(sgd({ momentum: 0.9 }), 4)
    expect(() => s.importState(new Float32Array(4))).toThrow(OptimizerStateError)
    expect(() => s.importState(new Float32Array(4))).toThrow(/SGD state has 4 values, expected 5/)
    expect(() => s.importState(Float32Array.of(0.5, 0, 0, 0, 0))).toThrow(/momentum flag/)
    const a = createOptimizer(adam({}), 2)
    expect(() => a.importState(Float32Array.of(1.5, 0, 0, 0, 0))).toThrow(/step count 1.5/)
    expect(() => a.importState(Float32Array.of(-1, 0, 0, 0, 0))).toThrow(OptimizerStateError)
    expect(() => a.step(new Float32Array(3), new Float32Array(3), 0.1)).toThrow(/built for 2 parameters got 3/)
    expect(() => a.step(new Float32Array(2), new Float32Array(1), 0.1)).toThrow(RangeError)
    // a refused import leaves the state untouched
    const p = Float32Array.of(1, 1)
    a.step(p, Float32Array.of(0.5, 0.5), 0.001)
    expect(a.exportState()[0]).toBe(1)
  })
})
