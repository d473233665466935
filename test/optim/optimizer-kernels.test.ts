/**
 * The optimizer's f32x4 SIMD kernels against PyTorch's update formulas written out in float32
 * (every operation rounded with Math.fround; state below FLT_MIN stored as 0, our one
 * departure), bit for bit, on random data: every SGD variant and
 * Adam, lengths around the chunk size and lengths that are not a multiple of 4 (the last values
 * run in JS), several steps with a changing learning rate, on parameters the optimizer hosts
 * (in place) and on parameters elsewhere (through the scratch chunks).
 */
import { describe, expect, it } from 'vitest'
import { OptimizerConfigSchema, type OptimizerConfig } from '../../config/job-config.js'
import { createRng } from '../../ml/core/rng.js'
import { createOptimizer } from '../../ml/optim/index.js'
import { CHUNK, createKernelMemory, createOptimizerKernels } from '../../ml/optim/wasm-kernels.js'

type Sgd = Extract<OptimizerConfig, { type: 'sgd' }>
type Adam = Extract<OptimizerConfig, { type: 'adam' }>
const fr = Math.fround
/** float32's smallest normal number */
const FLT_MIN = 2 ** -126
/** the optimizer's state flush (wasm-kernels.ts flushState) */
const flush = (x: number): number => (Math.abs(x) < FLT_MIN ? 0 : x)

/** torch.optim.SGD (1.13, single-tensor path) as float32 operations. */
function referenceSgd(c: Sgd, params: Float32Array, grad: Float32Array, buffer: Float32Array, lr: number, first: boolean): void {
  const mu = fr(first ? 0 : c.momentum)
  const [l, wd, m] = [fr(lr), fr(c.weightDecay), fr(c.momentum)]
  for (let i = 0; i < params.length; i++) {
    const g = wd === 0 ? grad[i] : fr(grad[i] + fr(wd * params[i])) // d_p = d_p.add(p, alpha=wd)
    if (c.momentum === 0) {
      params[i] = fr(params[i] - fr(l * g)) // p.add_(d_p, alpha=-lr)
      continue
    }
    const b = flush(fr(fr(mu * buffer[i]) + g)) // buf.mul_(momentum).add_(d_p)
    buffer[i] = b
    params[i] = fr(params[i] - fr(l * (c.nesterov ? fr(g + fr(m * b)) : b)))
  }
}

/** torch.optim.Adam (1.13, single-tensor path) as float32 operations. */
function referenceAdam(c: Adam, params: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, lr: number, t: number): void {
  const stepSize = fr(lr / (1 - Math.pow(c.beta1, t)))
  const sqrtBc2 = fr(Math.sqrt(1 - Math.pow(c.beta2, t)))
  for (let i = 0; i < params.length; i++) {
    const g = c.weightDecay === 0 ? grad[i] : fr(grad[i] + fr(fr(c.weightDecay) * params[i]))
    const mi = flush(fr(fr(fr(c.beta1) * m[i]) + fr(fr(1 - c.beta1) * g))) // exp_avg.mul_(b1).add_(g, alpha=1-b1)
    const vi = flush(fr(fr(fr(c.beta2) * v[i]) + fr(fr(fr(1 - c.beta2) * g) * g))) // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
    m[i] = mi
    v[i] = vi
    const denom = fr(fr(fr(Math.sqrt(vi)) / sqrtBc2) + fr(c.eps)) // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
    params[i] = fr(params[i] - fr(stepSize * fr(mi / denom))) // p.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

function randomArray(n: number, seed: number, scale: number): Float32Array {
  const rng = createRng(seed)
  return Float32Array.from({ length: n }, () => (rng.nextFloat() - 0.5) * scale)
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
const LENGTHS = [1, 2, 3, 4, 7, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK + 3, 3 * CHUNK + 6]
const LRS = [0.1, 0.05, 0.01, 0.3]
/** every length with the parameters hosted by the optimizer (in place) and outside it (scratch chunks) */
const CASES = LENGTHS.flatMap((n) => [[n, true], [n, false]] as const)

describe('optimizer kernels are bit-identical to the float32 formulas', () => {
  it('compile in this runtime (else the optimizer falls back to the plain loops and this file tests those)', () => {
    // the eight update variants and the finiteness scan
    expect(Object.keys(createOptimizerKernels(createKernelMemory(1)))).toHaveLength(9)
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
      for (const [n, hosted] of CASES) {
        const opt = createOptimizer(config, n)
        const params = hosted ? opt.hostParameters(randomArray(n, n, 2)) : randomArray(n, n, 2)
        const expected = params.slice()
        const buffer = new Float32Array(n)
        LRS.forEach((lr, step) => {
          const grad = randomArray(n, 100 * n + step, 1)
          opt.step(params, grad, lr)
          referenceSgd(config, expected, grad, buffer, lr, step === 0)
          expect(bytes(params).equals(bytes(expected)), `n=${n}${hosted ? ' hosted' : ''} step ${step}`).toBe(true)
          if (config.momentum > 0) expect(bytes(opt.exportState().subarray(1)).equals(bytes(buffer))).toBe(true)
        })
      }
    })
  }

  for (const partial of [{}, { weightDecay: 1e-2 }, { beta1: 0.8, beta2: 0.99, eps: 1e-6 }] as Array<Partial<Adam>>) {
    it(`Adam ${JSON.stringify(partial)}`, () => {
      const config = OptimizerConfigSchema.parse({ type: 'adam', ...partial }) as Adam
      for (const [n, hosted] of CASES) {
        const opt = createOptimizer(config, n)
        const params = hosted ? opt.hostParameters(randomArray(n, n, 2)) : randomArray(n, n, 2)
        const expected = params.slice()
        const m = new Float32Array(n)
        const v = new Float32Array(n)
        LRS.forEach((lr, step) => {
          const grad = randomArray(n, 100 * n + step, 1)
          opt.step(params, grad, lr)
          referenceAdam(config, expected, grad, m, v, lr, step + 1)
          expect(bytes(params).equals(bytes(expected)), `n=${n}${hosted ? ' hosted' : ''} step ${step}`).toBe(true)
          const state = opt.exportState()
          expect(bytes(state.subarray(1, 1 + n)).equals(bytes(m))).toBe(true)
          expect(bytes(state.subarray(1 + n)).equals(bytes(v))).toBe(true)
        })
      }
    })
  }
})

describe('hosted parameters', () => {
  it('live in the optimizer: the same array on every call, holding the values given, refused at another length', () => {
    const opt = createOptimizer(OptimizerConfigSchema.parse({ type: 'sgd', momentum: 0.9 }), 10)
    const first = opt.hostParameters(Float32Array.from({ length: 10 }, (_, i) => i))
    const again = opt.hostParameters(new Float32Array(10).fill(7))
    expect(again).toBe(first)
    expect([...first]).toEqual(new Array(10).fill(7))
    expect(opt.hostParameters(first)).toBe(first)
    expect(() => opt.hostParameters(new Float32Array(9))).toThrow(/built for 10 parameters was given 9/)
  })

  it('are updated by step like parameters elsewhere, and leave the state exported alike', () => {
    const config = OptimizerConfigSchema.parse({ type: 'adam', weightDecay: 1e-3 })
    const n = 2 * CHUNK + 7
    const inPlace = createOptimizer(config, n)
    const elsewhere = createOptimizer(config, n)
    const hosted = inPlace.hostParameters(randomArray(n, 3, 2))
    const plain = randomArray(n, 3, 2)
    for (let step = 0; step < 3; step++) {
      const grad = randomArray(n, 50 + step, 1)
      inPlace.step(hosted, grad, 0.01)
      elsewhere.step(plain, grad, 0.01)
    }
    expect(bytes(hosted).equals(bytes(plain))).toBe(true)
    expect(bytes(inPlace.exportState()).equals(bytes(elsewhere.exportState()))).toBe(true)
  })

  it('read a gradient written into the optimizer\'s gradient buffer in place, with the same result as a gradient elsewhere', () => {
    const config = OptimizerConfigSchema.parse({ type: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 1e-4 })
    const n = CHUNK + 5
    const inPlace = createOptimizer(config, n)
    const elsewhere = createOptimizer(config, n)
    const hosted = inPlace.hostParameters(randomArray(n, 4, 2))
    const plain = randomArray(n, 4, 2)
    expect(inPlace.gradientBuffer()).toBe(inPlace.gradientBuffer())
    for (let step = 0; step < 3; step++) {
      const grad = randomArray(n, 60 + step, 1)
      inPlace.gradientBuffer().set(grad)
      inPlace.step(hosted, inPlace.gradientBuffer(), 0.05)
      elsewhere.step(plain, grad, 0.05)
    }
    expect(bytes(hosted).equals(bytes(plain))).toBe(true)
    expect(bytes(inPlace.exportState()).equals(bytes(elsewhere.exportState()))).toBe(true)
  })

  it('allFinite finds an infinity or a NaN anywhere in its memory (SIMD, 16 values a pass) and elsewhere (JS), and nothing in finite extremes', () => {
    for (const n of [1, 15, 16, 17, 63, 64, 1000, CHUNK + 5]) {
      const optimizer = createOptimizer(OptimizerConfigSchema.parse({ type: 'sgd', momentum: 0.9 }), n)
      const local = optimizer.localGradientBuffer()
      expect(optimizer.localGradientBuffer()).toBe(local)
      expect(local).not.toBe(optimizer.gradientBuffer())
      local.set(randomArray(n, 90, 1))
      // the largest finite magnitudes and a subnormal are finite
      local[0] = 3.4028234663852886e38
      local[n - 1] = -3.4028234663852886e38
      if (n > 2) local[1] = 1e-45
      const arrays = [local, optimizer.gradientBuffer(), optimizer.hostParameters(local), local.slice()]
      arrays[1].set(local)
      for (const values of arrays) {
        expect(optimizer.allFinite(values), `n ${n}`).toBe(true)
        for (const at of new Set([0, 1, 15, 16, Math.floor(n / 2), n - (n % 16) - 1, n - 1].filter((i) => i >= 0 && i < n))) {
          for (const bad of [Infinity, -Infinity, NaN]) {
            const keep = values[at]
            values[at] = bad
            expect(optimizer.allFinite(values), `n ${n}, ${bad} at ${at}`).toBe(false)
            values[at] = keep
          }
        }
        expect(optimizer.allFinite(values)).toBe(true)
      }
    }
  })
})

describe('optimizer state below float32\'s smallest normal number', () => {
  it('is stored as 0: a momentum whose gradient stays 0 decays to 0, not into the subnormals, where float32 rounding would keep it (SGD momentum, Adam m and v; kernel and JS tail alike)', () => {
    const configs = [
      OptimizerConfigSchema.parse({ type: 'sgd', lr: 0.01, momentum: 0.9 }),
      OptimizerConfigSchema.parse({ type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 0 }),
      // beta2 0.9 so that v decays as fast as m
      OptimizerConfigSchema.parse({ type: 'adam', lr: 0.001, beta2: 0.9 })
    ]
    const subnormal = (x: number): boolean => x !== 0 && Math.abs(x) < FLT_MIN
    // 0.9 x the smallest subnormal rounds back to it: unflushed, a decaying state stays there
    expect(fr(0.9 * 2 ** -149)).toBe(2 ** -149)
    for (const config of configs) {
      // 7 values: 4 through the kernel, 3 through the JS loop
      const n = 7
      const optimizer = createOptimizer(config, n)
      const params = optimizer.hostParameters(Float32Array.from({ length: n }, (_, i) => 1 + i))
      const grad = new Float32Array(n).fill(1e-3)
      optimizer.step(params, grad, config.lr)
      grad.fill(0)
      const state = optimizer.exportState()
      let sawSubnormalFree = true
      for (let s = 0; s < 2000; s++) {
        optimizer.step(params, grad, config.lr)
        if (state.subarray(1).some(subnormal)) sawSubnormalFree = false
      }
      expect(sawSubnormalFree, `${config.type}: no subnormal state value after any step`).toBe(true)
      expect(Array.from(state.subarray(1)), `${config.type}: the decayed state is 0`).toEqual(new Array<number>(state.length - 1).fill(0))
    }
  })
})
