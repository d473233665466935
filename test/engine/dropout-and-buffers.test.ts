/**
 * Dropout masks are a function of (job seed, step, sample index) only, so peers drop the same
 * units for the same sample; BatchNorm buffers are averaged with their aggregated statistics,
 * never given an optimizer step.
 */
import { describe, expect, it } from 'vitest'
import type { Batch } from '../../ml/core/types.js'
import { dropoutMasks } from '../../ml/engine/dropout-masks.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { ForwardGraphBuilder } from '../../ml/models/graph-builder.js'
import { createOptimizer } from '../../ml/optim/index.js'
import { createLayout } from '../../ml/params.js'

const input = { name: 'dropout_mask_0', shape: [3, 1000], ratio: 0.25 }
const batch = (indices: number[], step: number): Batch => ({
  size: indices.length, sampleShape: [1000], inputs: new Float32Array(indices.length * 1000), labels: new Int32Array(indices.length), dropout: { seed: 9, step, sampleIndices: indices }
})

describe('dropout masks', () => {
  it('depend on (seed, step, sample index), not on the batch a sample lands in', () => {
    const [a] = dropoutMasks([input], batch([4, 7, 11], 3))
    const [b] = dropoutMasks([{ ...input, shape: [2, 1000] }], batch([11, 4], 3))
    expect(b.subarray(0, 1000)).toEqual(a.subarray(2000, 3000))
    expect(b.subarray(1000, 2000)).toEqual(a.subarray(0, 1000))
    const [later] = dropoutMasks([input], batch([4, 7, 11], 4))
    expect(later).not.toEqual(a)
    // inverted dropout: 0 or 1/(1-p), about p of them dropped
    expect(new Set(a)).toEqual(new Set([0, Math.fround(1 / 0.75)]))
    const dropped = a.filter((v) => v === 0).length / a.length
    expect(dropped).toBeGreaterThan(0.2)
    expect(dropped).toBeLessThan(0.3)
  })

  it('the training graph applies them (same key, same gradient; another step, another gradient); evaluation does not drop', async () => {
    const g = new ForwardGraphBuilder()
    const model = g.build('drop', [20], 10, g.linear(g.dropout(g.relu(g.linear(g.input, 'fc1', 20, 30)), 0.5), 'fc2', 30, 10))
    const computer = createOnnxGradientComputer(model)
    const params = model.initParameters(1)
    const inputs = Float32Array.from({ length: 40 }, (_, i) => Math.sin(i))
    const at = (step: number): Batch => ({ size: 2, sampleShape: [20], inputs, labels: Int32Array.of(1, 2), dropout: { seed: 1, step, sampleIndices: [5, 6] } })
    const a = await computer.computeGradient(params, at(0))
    const again = await computer.computeGradient(params, at(0))
    const other = await computer.computeGradient(params, at(1))
    const e1 = await computer.evaluate(params, at(0))
    const e2 = await computer.evaluate(params, at(1))
    await computer.close()
    expect(again.gradient).toEqual(a.gradient)
    expect(other.gradient).not.toEqual(a.gradient)
    expect(e2.lossSum).toBe(e1.lossSum)
  })
})

describe('running buffers in the optimizer', () => {
  it('running = (1 - m) running + m stat for buffers, a normal SGD step elsewhere (no momentum, no weight decay on buffers)', () => {
    const layout = createLayout([
      { name: 'w', shape: [2] },
      { name: 'bn.running_mean', shape: [2], kind: 'buffer', momentum: 0.1 }
    ])
    const opt = createOptimizer({ type: 'sgd', lr: 0.5, momentum: 0.9, nesterov: false, weightDecay: 0.1 }, 4, layout.specs.filter((s) => s.kind === 'buffer'))
    const params = Float32Array.of(1, 2, 10, 20)
    opt.step(params, Float32Array.of(1, 1, 0, 40), 0.5)
    expect(params[0]).toBeCloseTo(1 - 0.5 * (1 + 0.1 * 1), 6)
    expect(params[2]).toBeCloseTo(0.9 * 10 + 0.1 * 0, 5)
    expect(params[3]).toBeCloseTo(0.9 * 20 + 0.1 * 40, 5)
    opt.step(params, Float32Array.of(0, 0, 0, 40), 0.5)
    expect(params[3]).toBeCloseTo(0.9 * 22 + 0.1 * 40, 4)
  })
})
