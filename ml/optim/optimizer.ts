/**
 * Optimizers in plain typed-array code, with PyTorch's update rules. State is one flat
 * Float32Array so it can be checkpointed and sent to a joining peer as is.
 */
import type { OptimizerConfig } from '../../config/job-config.js'

export interface Optimizer {
  readonly stateSize: number
  /** params -= update(grad), in place; params and grad hold exactly paramCount values */
  step(params: Float32Array, grad: Float32Array, lr: number): void
  /** The live state (not a copy: the next step changes it); slice() it to keep a snapshot. */
  exportState(): Float32Array
  importState(state: Float32Array): void
}

export class OptimizerStateError extends Error {
  override name = 'OptimizerStateError'
}

export class OptimizerConfigError extends Error {
  override name = 'OptimizerConfigError'
}

function checkState(state: Float32Array, expected: number, kind: string): void {
  if (state.length !== expected) throw new OptimizerStateError(`${kind} state has ${state.length} values, expected ${expected}: the checkpoint belongs to another model or optimizer`)
}

function checkLengths(params: Float32Array, grad: Float32Array, paramCount: number): void {
  if (params.length !== paramCount || grad.length !== paramCount) {
    throw new RangeError(`optimizer built for ${paramCount} parameters got ${params.length} parameters and ${grad.length} gradient values`)
  }
}

// Adam's step count lives in a float32 slot: integers are exact up to 2^24 (16.7 M steps)
const MAX_EXACT_STEP = 2 ** 24

/** torch.optim.SGD: momentum buffer starts as the first gradient; dampening 0. */
export function createSgd(config: Extract<OptimizerConfig, { type: 'sgd' }>, paramCount: number): Optimizer {
  if (config.nesterov && config.momentum === 0) {
    // PyTorch refuses this too: Nesterov without momentum would silently be plain SGD
    throw new OptimizerConfigError('SGD with nesterov: true needs a momentum above 0: set optimizer.momentum (e.g. 0.9) or nesterov: false')
  }
  const usesMomentum = config.momentum > 0
  // [started flag, momentum buffer...]
  const state = new Float32Array(usesMomentum ? paramCount + 1 : 0)
  const buffer = state.subarray(1)
  return {
    stateSize: state.length,
    step(params, grad, lr) {
      checkLengths(params, grad, paramCount)
      const { momentum, weightDecay: wd, nesterov } = config
      const first = usesMomentum && state[0] === 0
      for (let i = 0; i < params.length; i++) {
        let g = grad[i]
        if (wd !== 0) g += wd * params[i]
        if (usesMomentum) {
          const b = first ? g : momentum * buffer[i] + g
          buffer[i] = b
          g = nesterov ? g + momentum * b : b
        }
        params[i] -= lr * g
      }
      if (usesMomentum) state[0] = 1
    },
    exportState: () => state,
    importState(saved) {
      checkState(saved, state.length, 'SGD')
      if (usesMomentum && saved[0] !== 0 && saved[0] !== 1) throw new OptimizerStateError(`SGD state starts with ${saved[0]}, expected the momentum flag 0 or 1: the state is damaged`)
      state.set(saved)
    }
  }
}

/** torch.optim.Adam with L2 weight decay and bias correction. */
export function createAdam(config: Extract<OptimizerConfig, { type: 'adam' }>, paramCount: number): Optimizer {
  // [step count, m..., v...]
  const state = new Float32Array(1 + 2 * paramCount)
  const m = state.subarray(1, 1 + paramCount)
  const v = state.subarray(1 + paramCount)
  return {
    stateSize: state.length,
    step(params, grad, lr) {
      checkLengths(params, grad, paramCount)
      const { beta1, beta2, eps, weightDecay: wd } = config
      if (state[0] >= MAX_EXACT_STEP) throw new OptimizerStateError(`Adam cannot count past ${MAX_EXACT_STEP} steps in its float32 state`)
      const t = state[0] + 1
      state[0] = t
      const bc1 = 1 - Math.pow(beta1, t)
      const bc2 = 1 - Math.pow(beta2, t)
      const stepSize = lr / bc1
      const sqrtBc2 = Math.sqrt(bc2)
      for (let i = 0; i < params.length; i++) {
        let g = grad[i]
        if (wd !== 0) g += wd * params[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        params[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / sqrtBc2 + eps)
      }
    },
    exportState: () => state,
    importState(saved) {
      checkState(saved, state.length, 'Adam')
      const t = saved[0]
      if (!Number.isInteger(t) || t < 0 || t > MAX_EXACT_STEP) throw new OptimizerStateError(`Adam state starts with step count ${t}, expected an integer in [0, ${MAX_EXACT_STEP}]: the state is damaged`)
      state.set(saved)
    }
  }
}

export function createOptimizer(config: OptimizerConfig, paramCount: number): Optimizer {
  return config.type === 'sgd' ? createSgd(config, paramCount) : createAdam(config, paramCount)
}
