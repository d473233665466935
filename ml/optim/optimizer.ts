/**
 * Optimizers with PyTorch's update rules, in float32 arithmetic as PyTorch's CPU kernels do it
 * (each operation rounded to float32), but for state values below float32's smallest normal
 * number, which are stored as 0 (wasm-kernels.ts flushState: subnormals slowed every update 6x).
 * State is one flat Float32Array so it can be checkpointed and sent to a joining peer as is. The element loops run as WebAssembly SIMD kernels
 * (wasm-kernels.ts) on the optimizer's own memory, which holds the state and, once handed over
 * with hostParameters(), the parameters: a step then updates them in place. Parameters or
 * gradients elsewhere pass through a scratch area a chunk at a time. The plain loops below give
 * the same bits (Math.fround after every operation); they run the last n % 4 values, and
 * everything where WebAssembly SIMD is missing.
 */
import type { OptimizerConfig } from '../../config/job-config.js'
import type { ParameterSpec } from '../core/types.js'
import { allFinite } from '../params.js'
import { withRunningBuffers } from './running-buffers.js'
import { CHUNK, createKernelMemory, createOptimizerKernels, FINITE_BLOCK, FINITE_KERNEL, FLT_MIN, type OptimizerKernels, type WasmMemory } from './wasm-kernels.js'

export interface Optimizer {
  readonly stateSize: number
  /** params -= update(grad), in place; params and grad hold exactly paramCount values */
  step(params: Float32Array, grad: Float32Array, lr: number): void
  /** The live state (not a copy: the next step changes it); slice() it to keep a snapshot. */
  exportState(): Float32Array
  importState(state: Float32Array): void
  /**
   * Copies `values` (paramCount float32) into the optimizer's own memory and returns that array
   * (the same array on every call): steps on it update the parameters where they lie, without
   * copying them in and out (a third of an SGD step's memory traffic). Without WebAssembly, a
   * plain array owned the same way.
   */
  hostParameters(values: Float32Array): Float32Array
  /**
   * A paramCount-long array in the optimizer's own memory (the same one on every call) for the
   * caller to write a gradient into, e.g. as the aggregation rule's output: step() reads it in
   * place instead of a chunk at a time through scratch. Its contents are the caller's.
   */
  gradientBuffer(): Float32Array
  /**
   * A second paramCount-long array in the optimizer's own memory (the same one on every call), for
   * a gradient computer to write this peer's own gradient into (GradientComputer.computeGradient's
   * `into`): allFinite() scans it and step() reads it in place. Beside gradientBuffer(), so it can
   * be the aggregation's input while that is its output. Zeros until written; its contents are
   * the writer's.
   */
  localGradientBuffer(): Float32Array
  /**
   * Whether every value is finite (params.ts allFinite): for an array in the optimizer's own
   * memory (the parameters it hosts, its gradient buffers) a WebAssembly SIMD scan of the exponent
   * bits, ~4x the JS loop's speed (mlp's gradient: ~8 against ~30 us); any other array, the JS loop.
   */
  allFinite(values: Float32Array): boolean
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

const fr = Math.fround
/** a state value below FLT_MIN in magnitude as +0, as the kernels store it (wasm-kernels.ts flushState) */
const flushed = (x: number): number => (Math.abs(x) < FLT_MIN ? 0 : x)

/**
 * Where an optimizer's arrays live: one memory holding the state (its first value at byte 12,
 * so the per-parameter arrays after it start 16-byte aligned), the hosted parameters, the
 * gradient buffer, the local gradient buffer and two scratch chunks; or, without WebAssembly (or
 * past the 4 GiB a WebAssembly memory can hold, ~260 M parameters with SGD momentum), plain
 * arrays. A buffer nothing writes (no computer writing into the local one) is never paged in.
 */
interface Workspace {
  readonly state: Float32Array
  readonly params: Float32Array
  readonly grad: Float32Array
  readonly localGrad: Float32Array
  readonly kernels: OptimizerKernels | undefined
  readonly memory: WasmMemory | undefined
  /** byte offsets in memory */
  readonly paramsAt: number
  readonly scratchP: number
  readonly scratchG: number
}

function createWorkspace(stateSize: number, paramCount: number): Workspace {
  const stateAt = 12
  const paramsAt = align16(stateAt + 4 * stateSize)
  const gradAt = align16(paramsAt + 4 * paramCount)
  const localGradAt = align16(gradAt + 4 * paramCount)
  const scratchP = align16(localGradAt + 4 * paramCount)
  const scratchG = scratchP + 4 * CHUNK
  try {
    const memory = createKernelMemory(scratchG + 4 * CHUNK)
    const kernels = createOptimizerKernels(memory)
    return {
      state: new Float32Array(memory.buffer, stateAt, stateSize),
      params: new Float32Array(memory.buffer, paramsAt, paramCount),
      grad: new Float32Array(memory.buffer, gradAt, paramCount),
      localGrad: new Float32Array(memory.buffer, localGradAt, paramCount),
      kernels, memory, paramsAt, scratchP, scratchG
    }
  } catch {
    return { state: new Float32Array(stateSize), params: new Float32Array(paramCount), grad: new Float32Array(paramCount), localGrad: new Float32Array(paramCount), kernels: undefined, memory: undefined, paramsAt: 0, scratchP: 0, scratchG: 0 }
  }
}

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16

/**
 * Runs a kernel over the first n - n % 4 values: in place where params and grad lie in the
 * workspace's memory, else CHUNK values at a time through the scratch area (copy in, run, copy
 * params back). s1/s2 are byte offsets of the state arrays in memory (0 when unused). The
 * scalars are separate arguments so a step allocates no array.
 */
function runKernel(w: Workspace, variant: string, params: Float32Array, grad: Float32Array, s1: number, s2: number,
  a0: number, a1: number, a2: number, a3: number, a4: number, a5: number, a6: number, a7: number): void {
  const kernel = (w.kernels as OptimizerKernels)[variant]
  const buffer = (w.memory as WasmMemory).buffer
  const count = params.length & ~3
  const paramsInside = params.buffer === buffer
  const gradInside = grad.buffer === buffer
  if (paramsInside && gradInside) {
    kernel(params.byteOffset, grad.byteOffset, s1, s2, count, a0, a1, a2, a3, a4, a5, a6, a7)
    return
  }
  const scratchP = new Float32Array(buffer, w.scratchP, CHUNK)
  const scratchG = new Float32Array(buffer, w.scratchG, CHUNK)
  for (let start = 0; start < count; start += CHUNK) {
    const end = Math.min(count, start + CHUNK)
    const len = end - start
    if (!paramsInside) scratchP.set(params.subarray(start, end))
    if (!gradInside) scratchG.set(grad.subarray(start, end))
    const at = 4 * start
    kernel(paramsInside ? params.byteOffset + at : w.scratchP, gradInside ? grad.byteOffset + at : w.scratchG,
      s1 === 0 ? 0 : s1 + at, s2 === 0 ? 0 : s2 + at, len, a0, a1, a2, a3, a4, a5, a6, a7)
    if (!paramsInside) params.set(len === CHUNK ? scratchP : scratchP.subarray(0, len), start)
  }
}

/** params.ts allFinite, by the SIMD kernel where `values` lie in the workspace's memory (its result in the scratch area) */
function finiteIn(w: Workspace, values: Float32Array): boolean {
  if (w.kernels === undefined || values.buffer !== (w.memory as WasmMemory).buffer) return allFinite(values)
  const whole = values.length - (values.length % FINITE_BLOCK)
  w.kernels[FINITE_KERNEL](0, values.byteOffset, w.scratchP, 0, whole)
  const flags = new Int32Array((w.memory as WasmMemory).buffer, w.scratchP, 4)
  return (flags[0] | flags[1] | flags[2] | flags[3]) === 0 && allFinite(values.subarray(whole))
}

/** byte offset of state[index] in the workspace's memory */
const stateOffset = (w: Workspace, index: number): number => w.state.byteOffset + 4 * index

function hostInto(w: Workspace, values: Float32Array): Float32Array {
  if (values.length !== w.params.length) throw new RangeError(`optimizer built for ${w.params.length} parameters was given ${values.length} to host`)
  if (values !== w.params) w.params.set(values)
  return w.params
}

/** torch.optim.SGD: momentum buffer starts as the first gradient; dampening 0. */
export function createSgd(config: Extract<OptimizerConfig, { type: 'sgd' }>, paramCount: number): Optimizer {
  if (config.nesterov && config.momentum === 0) {
    // PyTorch refuses this too: Nesterov without momentum would silently be plain SGD
    throw new OptimizerConfigError('SGD with nesterov: true needs a momentum above 0: set optimizer.momentum (e.g. 0.9) or nesterov: false')
  }
  const usesMomentum = config.momentum > 0
  // [started flag, momentum buffer...]
  const w = createWorkspace(usesMomentum ? paramCount + 1 : 0, paramCount)
  const state = w.state
  const buffer = state.subarray(1)
  const wd = config.weightDecay !== 0 ? '-wd' : ''
  const variant = usesMomentum ? `momentum${config.nesterov ? '-nesterov' : ''}${wd}` : `sgd${wd}`
  return {
    stateSize: state.length,
    step(params, grad, lr) {
      checkLengths(params, grad, paramCount)
      const { momentum, weightDecay, nesterov } = config
      // on the first step the buffer is the gradient itself (PyTorch clones it): momentum * 0 + g
      const mu = state.length > 0 && state[0] === 0 ? 0 : momentum
      let done = 0
      if (w.kernels !== undefined) {
        runKernel(w, variant, params, grad, usesMomentum ? stateOffset(w, 1) : 0, 0, weightDecay, lr, mu, momentum, 0, 0, 0, 0)
        done = paramCount & ~3
      }
      if (done < paramCount) {
        const tail = (a: Float32Array): Float32Array => a.subarray(done)
        if (usesMomentum) sgdMomentum(tail(params), tail(grad), tail(buffer), lr, mu, momentum, weightDecay, nesterov)
        else sgdPlain(tail(params), tail(grad), lr, weightDecay)
      }
      if (usesMomentum) state[0] = 1
    },
    exportState: () => state,
    importState(saved) {
      checkState(saved, state.length, 'SGD')
      if (usesMomentum && saved[0] !== 0 && saved[0] !== 1) throw new OptimizerStateError(`SGD state starts with ${saved[0]}, expected the momentum flag 0 or 1: the state is damaged`)
      state.set(saved)
    },
    hostParameters: (values) => hostInto(w, values),
    gradientBuffer: () => w.grad,
    localGradientBuffer: () => w.localGrad,
    allFinite: (values) => finiteIn(w, values)
  }
}

// The loops live in plain top-level functions with the branches hoisted out: measured in one run,
// 0.6-0.85x the time of the same loops written inside the step closure, with identical results.
// Every operation is rounded to float32 (scalars too), as the f32x4 kernels compute.
function sgdPlain(params: Float32Array, grad: Float32Array, lr: number, wd: number): void {
  const n = params.length
  const l = fr(lr)
  const d = fr(wd)
  for (let i = 0; i < n; i++) {
    const g = d === 0 ? grad[i] : fr(grad[i] + fr(d * params[i]))
    params[i] = fr(params[i] - fr(l * g))
  }
}

function sgdMomentum(params: Float32Array, grad: Float32Array, buffer: Float32Array, lr: number, mu: number, momentum: number, wd: number, nesterov: boolean): void {
  const n = params.length
  const l = fr(lr)
  const d = fr(wd)
  const u = fr(mu)
  const m = fr(momentum)
  for (let i = 0; i < n; i++) {
    const g = d === 0 ? grad[i] : fr(grad[i] + fr(d * params[i]))
    const b = flushed(fr(fr(u * buffer[i]) + g))
    buffer[i] = b
    params[i] = fr(params[i] - fr(l * (nesterov ? fr(g + fr(m * b)) : b)))
  }
}

function adamLoop(params: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, beta1: number, beta2: number, eps: number, wd: number, stepSize: number, sqrtBc2: number): void {
  const n = params.length
  const b1 = fr(beta1)
  const c1 = fr(1 - beta1)
  const b2 = fr(beta2)
  const c2 = fr(1 - beta2)
  const e = fr(eps)
  const d = fr(wd)
  const s = fr(stepSize)
  const q = fr(sqrtBc2)
  for (let i = 0; i < n; i++) {
    const g = d === 0 ? grad[i] : fr(grad[i] + fr(d * params[i]))
    const mi = flushed(fr(fr(b1 * m[i]) + fr(c1 * g)))
    const vi = flushed(fr(fr(b2 * v[i]) + fr(fr(c2 * g) * g)))
    m[i] = mi
    v[i] = vi
    const denom = fr(fr(fr(Math.sqrt(vi)) / q) + e)
    params[i] = fr(params[i] - fr(s * fr(mi / denom)))
  }
}

/** torch.optim.Adam with L2 weight decay and bias correction. */
export function createAdam(config: Extract<OptimizerConfig, { type: 'adam' }>, paramCount: number): Optimizer {
  // [step count, m..., v...]
  const w = createWorkspace(1 + 2 * paramCount, paramCount)
  const state = w.state
  const m = state.subarray(1, 1 + paramCount)
  const v = state.subarray(1 + paramCount)
  const variant = config.weightDecay !== 0 ? 'adam-wd' : 'adam'
  return {
    stateSize: state.length,
    step(params, grad, lr) {
      checkLengths(params, grad, paramCount)
      const { beta1, beta2, eps, weightDecay } = config
      if (state[0] >= MAX_EXACT_STEP) throw new OptimizerStateError(`Adam cannot count past ${MAX_EXACT_STEP} steps in its float32 state`)
      const t = state[0] + 1
      state[0] = t
      const stepSize = lr / (1 - Math.pow(beta1, t))
      const sqrtBc2 = Math.sqrt(1 - Math.pow(beta2, t))
      let done = 0
      if (w.kernels !== undefined) {
        runKernel(w, variant, params, grad, stateOffset(w, 1), stateOffset(w, 1 + paramCount), weightDecay, beta1, 1 - beta1, beta2, 1 - beta2, eps, stepSize, sqrtBc2)
        done = paramCount & ~3
      }
      if (done < paramCount) {
        const tail = (a: Float32Array): Float32Array => a.subarray(done)
        adamLoop(tail(params), tail(grad), tail(m), tail(v), beta1, beta2, eps, weightDecay, stepSize, sqrtBc2)
      }
    },
    exportState: () => state,
    importState(saved) {
      checkState(saved, state.length, 'Adam')
      const t = saved[0]
      if (!Number.isInteger(t) || t < 0 || t > MAX_EXACT_STEP) throw new OptimizerStateError(`Adam state starts with step count ${t}, expected an integer in [0, ${MAX_EXACT_STEP}]: the state is damaged`)
      state.set(saved)
    },
    hostParameters: (values) => hostInto(w, values),
    gradientBuffer: () => w.grad,
    localGradientBuffer: () => w.localGrad,
    allFinite: (values) => finiteIn(w, values)
  }
}

/**
 * The configured optimizer over `paramCount` values; `buffers` (running statistics, see
 * running-buffers.ts) are averaged with their aggregated batch statistics instead of trained.
 */
export function createOptimizer(config: OptimizerConfig, paramCount: number, buffers: readonly ParameterSpec[] = []): Optimizer {
  return withRunningBuffers(config.type === 'sgd' ? createSgd(config, paramCount) : createAdam(config, paramCount), buffers)
}
