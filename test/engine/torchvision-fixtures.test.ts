/**
 * ONNX exports of torchvision models (and a one-block transformer) made by
 * test/fixtures/make-fixtures.py: each loads, and one batch's gradients match PyTorch's float64
 * gradients within 1e-4 relative, for every parameter. PyTorch is not needed to run this test.
 * 'ops-mix' keeps two BatchNorm layers in the graph: they train on batch statistics, and the
 * gradient slots of their running buffers carry the batch mean and unbiased variance.
 *
 * The fixtures are compact (test/fixtures/generated-tensor.ts): weights and inputs are made from
 * their names, and the reference holds statistics of each float64 gradient (norm, largest
 * magnitude, 48 values and the largest, eight random-sign projections) rather than all of it.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import type { GradientComputer } from '../../ml/core/types.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { loadOnnxModel } from '../../ml/onnx/load-onnx-model.js'
import { expandFixture, generatedTensor } from '../fixtures/generated-tensor.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))
const TOLERANCE = 1e-4

interface GradientStats {
  readonly norm: number
  readonly maxAbs: number
  /** [flat index, value] */
  readonly samples: Array<[number, number]>
  /** dot products with the sign vectors generated from NAME#p1 ... NAME#p8 */
  readonly projections: number[]
}

interface Reference {
  readonly batch: number
  readonly sampleShape: number[]
  readonly inputBound: number
  readonly labels: number[]
  readonly loss: number
  /** buffer: a BatchNorm running statistic; its 'gradient' is the batch statistic it receives */
  readonly parameters: Array<{ name: string, shape: number[], buffer?: boolean } & GradientStats>
}

/**
 * how far `actual` (float32, from ONNX Runtime) is from PyTorch's float64 gradient, by what the
 * reference kept; `slices`: per slice along the first dimension, [sum, L2 norm] pairs
 */
function gradientMismatches(name: string, shape: readonly number[], actual: Float32Array, ref: GradientStats, slices: Float32Array): string[] {
  const scale = ref.maxAbs
  let sumSq = 0
  let maxAbs = 0
  for (const v of actual) {
    sumSq += v * v
    maxAbs = Math.max(maxAbs, Math.abs(v))
  }
  const out: string[] = []
  const off = (what: string, got: number, want: number, allowed: number): void => {
    if (!(Math.abs(got - want) <= allowed)) out.push(`${what}: ${got} against PyTorch's ${want} (allowed ${allowed.toExponential(2)})`)
  }
  off('L2 norm', Math.sqrt(sumSq), ref.norm, TOLERANCE * ref.norm)
  off('largest magnitude', maxAbs, ref.maxAbs, TOLERANCE * scale)
  for (const [i, want] of ref.samples) off(`value ${i}`, actual[i], want, TOLERANCE * scale)
  ref.projections.forEach((want, k) => {
    const signs = generatedTensor(`${name}#p${k + 1}`, actual.length, 1)
    let dot = 0
    for (let i = 0; i < actual.length; i++) dot += signs[i] < 0 ? -actual[i] : actual[i]
    // per-value errors within the tolerance, of random sign, add up to about sqrt(n) of them
    off(`projection ${k + 1}`, dot, want, TOLERANCE * scale * Math.sqrt(actual.length))
  })
  const rows = shape.length >= 2 ? shape[0] : actual.length
  const width = actual.length / rows
  for (let r = 0; r < rows; r++) {
    let sum = 0
    let sq = 0
    for (let i = r * width; i < (r + 1) * width; i++) {
      sum += actual[i]
      sq += actual[i] * actual[i]
    }
    // the same per-value tolerance, over the slice's values; float32 storage adds its rounding
    const allowed = TOLERANCE * scale * Math.sqrt(width)
    off(`slice ${r} sum`, sum, slices[2 * r], allowed + 1e-6 * Math.abs(slices[2 * r]))
    off(`slice ${r} norm`, Math.sqrt(sq), slices[2 * r + 1], allowed + 1e-6 * slices[2 * r + 1])
  }
  return out
}

const computers: GradientComputer[] = []
afterAll(async () => {
  for (const c of computers) await c.close()
})

describe('torchvision exports (opset 13, eval mode) load and match PyTorch float64 gradients', () => {
  for (const name of ['squeezenet1_1', 'mobilenet_v3_small', 'resnet18-w16', 'vgg11-w8', 'transformer-block', 'ops-mix']) {
    it(name, async () => {
      const model = await loadOnnxModel(expandFixture(await readFile(`${FIXTURES}${name}.onnx`)))
      const ref = JSON.parse(await readFile(`${FIXTURES}${name}.ref.json`, 'utf8')) as Reference
      const inputs = generatedTensor('input', ref.batch * ref.sampleShape.reduce((a, b) => a * b, 1), ref.inputBound)
      const labels = Int32Array.from(ref.labels)
      // per-slice statistics, laid out in the reference's parameter order
      const sliceStats = new Float32Array(new Uint8Array(await readFile(`${FIXTURES}${name}.ref.bin`)).buffer)
      const sliceOffsets = new Map<string, number>()
      let sliceAt = 0
      for (const p of ref.parameters) {
        sliceOffsets.set(p.name, sliceAt)
        sliceAt += 2 * (p.shape.length >= 2 ? p.shape[0] : p.shape.reduce((a, b) => a * b, 1))
      }
      expect(sliceAt).toBe(sliceStats.length)
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
      const byName = new Map(ref.parameters.map((p) => [p.name, p]))
      for (const spec of model.layout.specs) {
        const expected = byName.get(spec.name) as Reference['parameters'][number]
        const actual = result.gradient.subarray(spec.offset, spec.offset + spec.size)
        if (expected.maxAbs < 1e-9) {
          // exactly zero in PyTorch (a bias right before a training-mode BatchNorm): float32 rounding only
          expect(actual.reduce((m, v) => Math.max(m, Math.abs(v)), 0), `${name} ${spec.name}`).toBeLessThan(1e-5)
        } else {
          const at = sliceOffsets.get(spec.name) as number
          expect(gradientMismatches(spec.name, spec.shape, actual, expected, sliceStats.subarray(at)), `${name} ${spec.name}`).toEqual([])
        }
      }
    }, 120_000)
  }
})
