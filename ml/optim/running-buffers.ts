/**
 * Running statistics (BatchNorm's running mean and variance) kept in the flat parameter vector.
 * Their slots of the aggregated "gradient" hold the batch statistics the peers agreed on (the
 * training graph writes them there), so every peer folds the same values in:
 *   running = (1 - momentum) running + momentum stat      (PyTorch's BatchNorm update)
 * instead of taking an optimizer step; weight decay and momentum never touch them.
 */
import type { ParameterSpec } from '../core/types.js'
import type { Optimizer } from './optimizer.js'

/** Wraps `inner` so the buffer ranges get the running-average update; without buffers returns `inner`. */
export function withRunningBuffers(inner: Optimizer, buffers: readonly ParameterSpec[]): Optimizer {
  if (buffers.length === 0) return inner
  const size = buffers.reduce((sum, b) => sum + b.size, 0)
  const before = new Float32Array(size)
  return {
    stateSize: inner.stateSize,
    step(params, grad, lr) {
      let k = 0
      for (const b of buffers) {
        before.set(params.subarray(b.offset, b.offset + b.size), k)
        k += b.size
      }
      inner.step(params, grad, lr)
      k = 0
      for (const b of buffers) {
        const m = b.momentum ?? 0.1
        for (let i = 0; i < b.size; i++) params[b.offset + i] = (1 - m) * before[k + i] + m * grad[b.offset + i]
        k += b.size
      }
    },
    exportState: () => inner.exportState(),
    importState: (state) => inner.importState(state),
    hostParameters: (values) => inner.hostParameters(values),
    gradientBuffer: () => inner.gradientBuffer(),
    localGradientBuffer: () => inner.localGradientBuffer(),
    allFinite: (values) => inner.allFinite(values)
  }
}
