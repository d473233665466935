/** reuseGradientBuffer: the same gradients, bit for bit, written into one buffer per batch size. */
import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { createModel } from '../../ml/models/zoo.js'

describe('onnx gradient computer with a reused gradient buffer', () => {
  it('returns the fresh-buffer gradients in one buffer, overwritten by the next step', async () => {
    const model = createModel('lenet5')
    const fresh = createOnnxGradientComputer(model, { intraOpThreads: 1 })
    const reused = createOnnxGradientComputer(model, { intraOpThreads: 1, reuseGradientBuffer: true })
    try {
      const params = model.initParameters(3)
      const rng = createRng(4)
      const batches = [0, 1].map(() => ({
        size: 8,
        sampleShape: model.sampleShape,
        inputs: Float32Array.from({ length: 8 * 28 * 28 }, () => rng.nextFloat()),
        labels: Int32Array.from({ length: 8 }, () => rng.nextInt(10))
      }))
      const expected = await Promise.all(batches.map(async (b) => (await fresh.computeGradient(params, b)).gradient))
      const first = await reused.computeGradient(params, batches[0])
      expect(Buffer.from(first.gradient.buffer).equals(Buffer.from(expected[0].buffer))).toBe(true)
      const second = await reused.computeGradient(params, batches[1])
      expect(second.gradient).toBe(first.gradient)
      expect(Buffer.from(second.gradient.buffer).equals(Buffer.from(expected[1].buffer))).toBe(true)
      expect(Buffer.from(expected[0].buffer).equals(Buffer.from(expected[1].buffer))).toBe(false)
    } finally {
      await fresh.close()
      await reused.close()
    }
  }, 60_000)
})
