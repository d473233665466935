/**
 * ONNX exports of torchvision models (and a one-block transformer) made by
 * test/fixtures/make-fixtures.py: each loads, and one batch's gradients match PyTorch's float64
 * gradients within 1e-4 relative, for every parameter. PyTorch is not needed to run this test.
 * 'ops-mix' keeps two BatchNorm layers in the graph: they train on batch statistics, and the
 * gradient slots of their running buffers carry the batch mean and unbiased variance.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import type { GradientComputer } from '../../ml/core/types.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { loadOnnxModel } from '../../ml/onnx/load-onnx-model.js'
import { relativeError } from './reference.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))
const TOLERANCE = 1e-4

interface Reference {
  readonly batch: number
  readonly sampleShape: number[]
  readonly loss: number
  /** buffer: a BatchNorm running statistic; its 'gradient' is the batch statistic it receives */
  readonly parameters: Array<{ name: string, shape: number[], buffer?: boolean }>
}

async function readReference(name: string): Promise<{ ref: Reference, inputs: Float32Array, labels: Int32Array, gradients: Map<string, Float64Array> }> {
  const ref = JSON.parse(await readFile(`${FIXTURES}${name}.ref.json`, 'utf8')) as Reference
  const bin = await readFile(`${FIXTURES}${name}.ref.bin`)
  const bytes = new Uint8Array(bin.buffer, bin.byteOffset, bin.byteLength).slice()
  const sample = ref.sampleShape.reduce((a, b) => a * b, 1)
  let offset = 0
  const take = (count: number): Uint8Array => bytes.subarray(offset, (offset += count * 4))
  const inputs = new Float32Array(take(ref.batch * sample).slice().buffer)
  const labels = new Int32Array(take(ref.batch).slice().buffer)
  const gradients = new Map<string, Float64Array>()
  for (const p of ref.parameters) gradients.set(p.name, Float64Array.from(new Float32Array(take(p.shape.reduce((a, b) => a * b, 1)).slice().buffer)))
  expect(offset).toBe(bytes.length)
  return { ref, inputs, labels, gradients }
}

const computers: GradientComputer[] = []
afterAll(async () => {
  for (const c of computers) await c.close()
})

describe('torchvision exports (opset 13, eval mode) load and match PyTorch float64 gradients', () => {
  for (const name of ['squeezenet1_1', 'mobilenet_v3_small', 'resnet18-w16', 'vgg11-w8', 'transformer-block', 'ops-mix']) {
    it(name, async () => {
      const model = await loadOnnxModel(`${FIXTURES}${name}.onnx`)
      const { ref, inputs, labels, gradients } = await readReference(name)
      expect(model.sampleShape).toEqual(ref.sampleShape)
      expect(model.numClasses).toBe(10)
      // every PyTorch parameter is one parameter of the loaded model, and nothing else is
      expect(model.layout.specs.map((s) => s.name).sort()).toEqual(ref.parameters.map((p) => p.name).sort())
      // BatchNorm's running statistics are buffers (averaged, not trained), everything else trains
      expect(model.layout.specs.filter((s) => s.kind === 'buffer').map((s) => s.name).sort()).toEqual(ref.parameters.filter((p) => p.buffer === true).map((p) => p.name).sort())

      const computer = createOnnxGradientComputer(model)
      computers.push(computer)
      const result = await computer.computeGradient(model.initParameters(0), { size: ref.batch, sampleShape: ref.sampleShape, inputs, labels })
      expect(Math.abs(result.loss - ref.loss) / ref.loss).toBeLessThan(TOLERANCE)
      for (const spec of model.layout.specs) {
        const expected = gradients.get(spec.name) as Float64Array
        const actual = result.gradient.subarray(spec.offset, spec.offset + spec.size)
        const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
        if (scale < 1e-9) {
          // exactly zero in PyTorch (a bias right before a training-mode BatchNorm): float32 rounding only
          expect(actual.reduce((m, v) => Math.max(m, Math.abs(v)), 0), `${name} ${spec.name}`).toBeLessThan(1e-5)
        } else {
          expect(relativeError(actual, expected), `${name} ${spec.name}`).toBeLessThan(TOLERANCE)
        }
      }
    }, 120_000)
  }
})
