import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import type { Batch } from '../../ml/core/types.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { createModel } from '../../ml/models/zoo.js'
import { readDigits, type Digits } from './mnist-digits.js'

const TRAIN = 2000
const HELD_OUT = 1000
const BATCH = 16
const LR = 0.01
const MOMENTUM = 0.9

/** The usual MNIST standardisation (mean 0.1307, std 0.3081). */
function normalize(digits: Digits): Digits {
  return { inputs: digits.inputs.map((v) => (v - 0.1307) / 0.3081), labels: digits.labels }
}

describe('a short real training run', () => {
  it('lenet5 learns MNIST: one epoch of SGD on 2000 digits beats 75% on 1000 held-out digits', async () => {
    const model = createModel('lenet5')
    const train = normalize(readDigits(TRAIN, 0))
    const heldOut = normalize(readDigits(HELD_OUT, TRAIN / 10)) // per-class indices 200..299: disjoint from training
    const computer = createOnnxGradientComputer(model)
    const params = model.initParameters(2024)
    const velocity = new Float32Array(params.length)
    const rng = createRng(7)
    const order = Array.from({ length: TRAIN }, (_, i) => i)
    for (let i = TRAIN - 1; i > 0; i--) {
      const j = rng.nextInt(i + 1)
      ;[order[i], order[j]] = [order[j], order[i]]
    }

    const evaluate = async (): Promise<number> => {
      let correct = 0
      for (let start = 0; start < HELD_OUT; start += 250) {
        const batch: Batch = {
          size: 250,
          sampleShape: model.sampleShape,
          inputs: heldOut.inputs.subarray(start * 784, (start + 250) * 784),
          labels: heldOut.labels.subarray(start, start + 250)
        }
        correct += (await computer.evaluate(params, batch)).correct
      }
      return correct / HELD_OUT
    }

    try {
      const before = await evaluate()
      const inputs = new Float32Array(BATCH * 784)
      const labels = new Int32Array(BATCH)
      const losses: number[] = []
      for (let step = 0; step + BATCH <= TRAIN; step += BATCH) {
        for (let k = 0; k < BATCH; k++) {
          const i = order[step + k]
          inputs.set(train.inputs.subarray(i * 784, (i + 1) * 784), k * 784)
          labels[k] = train.labels[i]
        }
        const { loss, gradient } = await computer.computeGradient(params, { size: BATCH, sampleShape: model.sampleShape, inputs, labels })
        losses.push(loss)
        for (let p = 0; p < params.length; p++) {
          velocity[p] = MOMENTUM * velocity[p] + gradient[p]
          params[p] -= LR * velocity[p]
        }
      }
      const after = await evaluate()
      const firstLoss = losses.slice(0, 5).reduce((a, b) => a + b) / 5
      const lastLoss = losses.slice(-5).reduce((a, b) => a + b) / 5
      console.log(`lenet5 held-out accuracy ${before} -> ${after}, mean loss of first/last 5 steps ${firstLoss.toFixed(3)} -> ${lastLoss.toFixed(3)}`)
      expect(before).toBeLessThan(0.3)
      expect(lastLoss).toBeLessThan(firstLoss / 2)
      expect(after).toBeGreaterThan(0.75)
    } finally {
      await computer.close()
    }
  }, 60_000)
})
