/**
 * The optimizer's SIMD kernels against the plain float64-then-float32 formulas they replaced,
 * bit for bit, on random data: every SGD variant and Adam, lengths around the chunk size and
 * odd lengths (the last element runs in JS), several steps with a changing learning rate.
 */
import { describe, expect, it } from 'vitest'
import { OptimizerConfigSchema, type OptimizerConfig } from '../../config/job-config.js'
import { createRng } from '../../ml/core/rng.js'
import { createOptimizer } from '../../ml/optim/index.js'
import { CHUNK, createOptimizerKernels } from '../../ml/optim/wasm-kernels.js'

type Sgd = Extract<OptimizerConfig, { type: 'sgd' }>
type Adam = Extract<OptimizerConfig, { type: 'adam' }>

/** The loops optimizer.ts had before the kernels, written out as PyTorch's formulas. */
function referenceSgd(c: Sgd, params: Float32Array, grad: Float32Array, buffer: Float32Array, lr: number, first: boolean): void {
  const mu = first ? 0 : c.momentum
  for (let i = 0; i < params.length; i++) {
    const g = c.weightDecay === 0 ? grad[i] : grad[i] + c.weightDecay * params[i]
    if (c.momentum === 0) {
      params[i] -= lr * g
      continue
    }
    const b = mu * buffer[i] + g
    buffer[i] = b
    params[i] -= lr * (c.nesterov ? g + c.momentum * b : b)
  }
}

function referenceAdam(c: Adam, params: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, lr: number, t: number): void {
  const stepSize = lr / (1 - Math.pow(c.beta1, t))
  const sqrtBc2 = Math.sqrt(1 - Math.pow(c.beta2, t))
  for (let i = 0; i < params.length; i++) {
    const g = c.weightDecay === 0 ? grad[i] : grad[i] + c.weightDecay * params[i]
    const mi = Math.fround(c.beta1 * m[i] + (1 - c.beta1) * g)
    const vi = Math.fround(c.beta2 * v[i] + (1 - c.beta2) * g * g)
    m[i] = mi
    v[i] = vi
    params[i] -= stepSize * mi / (Math.sqrt(vi) / sqrtBc2 + c.eps)
  }
}

function randomArray(n: number, seed: number, scale: number): Float32Array {
  const rng = createRng(seed)
  return Float32Array.from({ length: n }, () => (rng.nextFloat() - 0.5) * scale)
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
const LENGTHS = [1, 2, 7, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]
const LRS = [0.1, 0.05, 0.01, 0.3]

describe('optimizer kernels are bit-identical to the plain formulas', () => {
  it('compile in this runtime (else the optimizer falls back to the plain loops and this file tests those)', () => {
    expect(Object.keys(createOptimizerKernels().kernel)).toHaveLength(8)
  })

  const sgdConfigs: Array<Partial<Sgd>> = [
    { momentum: 0 },
    { momentum: 0, weightDecay: 1e-3 },
    { momentum: 0.9 },
    { momentum: 0.9, weightDecay: 5e-4 },
    { momentum: 0.9, nesterov: true },
    { momentum: 0.8, nesterov: true, weightDecay: 1e-2 }
  ]
  for (const partial of sgdConfigs) {
    it(`SGD ${JSON.stringify(partial)}`, () => {
      const config = OptimizerConfigSchema.parse({ type: 'sgd', ...partial }) as Sgd
      for (const n of LENGTHS) {
        const opt = createOptimizer(config, n)
        const params = randomArray(n, n, 2)
        const expected = params.slice()
        const buffer = new Float32Array(n)
        LRS.forEach((lr, step) => {
          const grad = randomArray(n, 100 * n + step, 1)
          opt.step(params, grad, lr)
          referenceSgd(config, expected, grad, buffer, lr, step === 0)
          expect(bytes(params).equals(bytes(expected)), `n=${n} step ${step}`).toBe(true)
          if (config.momentum > 0) expect(bytes(opt.exportState().subarray(1)).equals(bytes(buffer))).toBe(true)
        })
      }
    })
  }

  for (const partial of [{}, { weightDecay: 1e-2 }, { beta1: 0.8, beta2: 0.99, eps: 1e-6 }] as Array<Partial<Adam>>) {
    it(`Adam ${JSON.stringify(partial)}`, () => {
      const config = OptimizerConfigSchema.parse({ type: 'adam', ...partial }) as Adam
      for (const n of LENGTHS) {
        const opt = createOptimizer(config, n)
        const params = randomArray(n, n, 2)
        const expected = params.slice()
        const m = new Float32Array(n)
        const v = new Float32Array(n)
        LRS.forEach((lr, step) => {
          const grad = randomArray(n, 100 * n + step, 1)
          opt.step(params, grad, lr)
          referenceAdam(config, expected, grad, m, v, lr, step + 1)
          expect(bytes(params).equals(bytes(expected)), `n=${n} step ${step}`).toBe(true)
          const state = opt.exportState()
          expect(bytes(state.subarray(1, 1 + n)).equals(bytes(m))).toBe(true)
          expect(bytes(state.subarray(1 + n)).equals(bytes(v))).toBe(true)
        })
      }
    })
  }
})
