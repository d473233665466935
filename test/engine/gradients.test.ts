import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { afterAll, describe, expect, it } from 'vitest'
import { OptimizerConfigSchema } from '../../config/job-config.js'
import { denseDepthwiseConvs, denseSmallInputConvs, onePixelConvs } from '../../ml/autodiff/lower-convs.js'
import { NCHWC_DOMAIN } from '../../ml/autodiff/ops/nchwc.js'
import { pooledConvs, splitPooledConvs } from '../../ml/autodiff/pool-split-convs.js'
import { buildInferenceGraph, buildTrainingGraph, gradientOutputName, specializeGraph, TRAINING_INPUT_LABELS, TRAINING_OUTPUT_LOSS } from '../../ml/autodiff/training-graph.js'
import { createRng } from '../../ml/core/rng.js'
import type { Batch, GradientComputer } from '../../ml/core/types.js'
import { oneHot } from '../../ml/engine/logits.js'
import { detectNchwcBlock } from '../../ml/engine/nchwc-block.js'
import { createOnnxGradientComputer, GradientComputerClosedError, trainingGraphBytes } from '../../ml/engine/onnx-gradient-computer.js'
import { gradientSessionOptions, runTrainingGraph } from '../../ml/engine/training-run.js'
import type { ModelDefinition } from '../../ml/models/model-definition.js'
import { ForwardGraphBuilder } from '../../ml/models/graph-builder.js'
import { createModel } from '../../ml/models/zoo.js'
import { createOptimizer } from '../../ml/optim/index.js'
import { exportForwardOnnx } from '../../ml/onnx/export-forward.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'
import { readDigits } from './mnist-digits.js'
import { referenceGradient, relativeError } from './reference.js'

// float32 ORT against a float64 reference: per tensor, max |error| <= TOL * max |reference|
const GRADIENT_TOLERANCE = 2e-4
const LOSS_TOLERANCE = 1e-5

function randomBatch(model: ModelDefinition, size: number, seed: number): Batch {
  const rng = createRng(seed)
  const inputs = new Float32Array(size * 784).map(() => rng.nextFloat())
  const labels = Int32Array.from({ length: size }, () => rng.nextInt(model.numClasses))
  return { size, sampleShape: model.sampleShape, inputs, labels }
}

/** inputs uniform in [-1, 1) of the model's sample shape, labels uniform over its classes */
function signedBatch(model: ModelDefinition, size: number, seed: number): Batch {
  const rng = createRng(seed)
  const sampleSize = model.sampleShape.reduce((a, b) => a * b, 1)
  const inputs = Float32Array.from({ length: size * sampleSize }, () => rng.nextFloat() * 2 - 1)
  const labels = Int32Array.from({ length: size }, () => rng.nextInt(model.numClasses))
  return { size, sampleShape: model.sampleShape, inputs, labels }
}

function digitBatch(model: ModelDefinition, size: number): Batch {
  const { inputs, labels } = readDigits(size)
  return { size, sampleShape: model.sampleShape, inputs, labels }
}

const computers: GradientComputer[] = []
afterAll(async () => {
  for (const c of computers) await c.close()
})

async function checkAgainstReference(model: ModelDefinition, batch: Batch, params: Float32Array): Promise<void> {
  // NCHWc on (the default): the in-process graphs' convolutions, where they fit, run through it
  const computer = createOnnxGradientComputer(model)
  computers.push(computer)
  const result = await computer.computeGradient(params, batch)
  const ref = referenceGradient(model.forward, model.layout, params, batch.inputs, batch.labels)

  expect(Math.abs(result.loss - ref.loss)).toBeLessThan(LOSS_TOLERANCE * Math.max(1, ref.loss))
  expect(result.gradient.length).toBe(model.layout.totalSize)
  for (const spec of model.layout.specs) {
    const actual = result.gradient.subarray(spec.offset, spec.offset + spec.size)
    const expected = ref.gradient.subarray(spec.offset, spec.offset + spec.size)
    const maxRef = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
    expect(maxRef, `${spec.name} has a non-trivial gradient`).toBeGreaterThan(1e-6)
    expect(relativeError(actual, expected), `${model.name} ${spec.name}`).toBeLessThan(GRADIENT_TOLERANCE)
  }

  let refCorrect = 0
  const classes = model.numClasses
  for (let i = 0; i < batch.size; i++) {
    const row = Array.from(ref.logits.subarray(i * classes, (i + 1) * classes))
    if (row.indexOf(Math.max(...row)) === batch.labels[i]) refCorrect++
  }
  expect(result.correct).toBe(refCorrect)
  expect(result.size).toBe(batch.size)

  const evaluation = await computer.evaluate(params, batch)
  expect(evaluation.count).toBe(batch.size)
  expect(evaluation.correct).toBe(refCorrect)
  expect(Math.abs(evaluation.lossSum / batch.size - ref.loss)).toBeLessThan(LOSS_TOLERANCE * Math.max(1, ref.loss))
}

describe('training-graph gradients match a float64 reference', () => {
  for (const name of ['mlp', 'lenet5', 'convnet-test']) {
    it(`${name}: random batch`, async () => {
      const model = createModel(name)
      await checkAgainstReference(model, randomBatch(model, 8, 11), model.initParameters(3))
    })
    it(`${name}: real MNIST digits`, async () => {
      const model = createModel(name)
      await checkAgainstReference(model, digitBatch(model, 10), model.initParameters(5))
    })
  }

  it('convnet-test covers a stride-2 padded conv, overlapping max pooling and average pooling', () => {
    const nodes = createModel('convnet-test').forward.nodes
    const conv = nodes.find((n) => n.op === 'Conv')
    const pool = nodes.find((n) => n.op === 'MaxPool')
    expect(conv?.attrs.strides).toEqual({ kind: 'ints', value: [2, 2] })
    expect(conv?.attrs.pads).toEqual({ kind: 'ints', value: [1, 1, 1, 1] })
    expect(pool?.attrs.kernel_shape).toEqual({ kind: 'ints', value: [3, 3] })
    expect(pool?.attrs.strides).toEqual({ kind: 'ints', value: [2, 2] })
    expect(nodes.some((n) => n.op === 'AveragePool')).toBe(true)
  })

  it('disjoint max pooling over a size the stride does not divide (25x25 -> 12x12: the last row and column are never a max)', async () => {
    const g = new ForwardGraphBuilder()
    let x = g.maxPool(g.relu(g.conv(g.input, 'conv', 1, 3, 4)), 2)
    x = g.flatten(x)
    const model = g.build('odd-pool', [1, 28, 28], 10, g.linear(x, 'fc', 3 * 12 * 12, 10))
    await checkAgainstReference(model, digitBatch(model, 10), model.initParameters(7))
    await checkAgainstReference(model, randomBatch(model, 8, 13), model.initParameters(8))
  })

  it('a ReLU before a disjoint max pool is masked on the pooled grid, exactly, with tied maxima (positive and zero) in the windows', async () => {
    // a 1x1 conv over constant 2x2 blocks: every window's four values tie, positive or (after
    // the ReLU) zero, and windows straddling the blocks tie in part
    const g = new ForwardGraphBuilder()
    const pooled = g.maxPool(g.relu(g.conv(g.input, 'conv', 1, 3, 1)), 2)
    const model = g.build('tied-pool', [1, 28, 28], 10, g.linear(g.flatten(pooled), 'fc', 3 * 14 * 14, 10))
    const size = 6
    const rng = createRng(17)
    const inputs = new Float32Array(size * 784)
    const levels = [-1, 0, 0.5, 1]
    for (let n = 0; n < size; n++) {
      for (let by = 0; by < 28; by += 2) {
        for (let bx = 0; bx < 28; bx += 2) {
          // shifted by one pixel in odd samples, so windows straddle two blocks
          const v = levels[rng.nextInt(levels.length)]
          for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) inputs[n * 784 + Math.min(27, by + dy + (n % 2)) * 28 + Math.min(27, bx + dx + (n % 2))] = v
        }
      }
    }
    const labels = Int32Array.from({ length: size }, () => rng.nextInt(10))
    await checkAgainstReference(model, { size, sampleShape: model.sampleShape, inputs, labels }, model.initParameters(9))
    // the pool is split by window offset (the conv reads the batch input: pool-split-convs.ts) and
    // the ReLU moved after its Max: one mask, on the pooled grid
    const nodes = onnx.ModelProto.decode(trainingGraphBytes(model, 4)).graph!.node!
    const producer = new Map(nodes.flatMap((n) => n.output!.map((o) => [o, n] as const)))
    expect(nodes.filter((n) => n.opType === 'MaxPool')).toHaveLength(0)
    const greater = nodes.filter((n) => n.opType === 'Greater')
    expect(greater).toHaveLength(1)
    const relu = producer.get(greater[0].input![0])!
    expect(relu.opType).toBe('Relu')
    expect(producer.get(relu.input![0])!.opType).toBe('Max')
  })

  it.each([2, 1])('a conv of the batch input before a disjoint max pool trains as one strided conv per window offset (%i input channels; one: the offsets as one conv), with the float64 reference\'s gradients', async (channels) => {
    // [channels, 12, 12]: 3x3 pad 1 -> ReLU -> 2x2 pool (begin pads 1 and 0); 3x3 without padding
    // (offsets cut the input's first rows) -> 2x2 pool, no ReLU; 2x2 stride 2 -> ReLU -> 3x3 pool
    // (a window of 9 offsets, conv stride 2 -> 6); and a conv of a conv (not the batch input),
    // an overlapping pool and a pool the size does not divide: those three stay as they are
    const g = new ForwardGraphBuilder()
    const a = g.maxPool(g.relu(g.conv(g.input, 'padded', channels, 3, 3, { pad: 1 })), 2)
    const b = g.maxPool(g.conv(g.input, 'unpadded', channels, 3, 3), 2)
    const c = g.maxPool(g.relu(g.conv(g.input, 'strided', channels, 2, 2, { stride: 2 })), 3)
    const d = g.maxPool(g.relu(g.conv(a, 'inner', 3, 2, 3, { pad: 1 })), 2)
    const e = g.maxPool(g.relu(g.conv(g.input, 'overlap', channels, 2, 3, { pad: 1 })), 3, 2)
    const f = g.maxPool(g.conv(g.input, 'ragged', channels, 2, 3, { pad: 1 }), 5)
    const heads = ([[a, 3 * 36], [b, 3 * 25], [c, 2 * 4], [d, 2 * 9], [e, 2 * 25], [f, 2 * 4]] as const).map(([x, n], i) => g.linear(g.flatten(x), `fc${i}`, n, 10))
    const model = g.build('split-pools', [channels, 12, 12], 10, heads.reduce((sum, head) => g.sum(sum, head)))
    const size = 5
    const specialized = specializeGraph(model.forward, model.layout, size)
    const convOf = (param: string): string => specialized.graph.nodes.find((n) => n.op === 'Conv' && n.inputs[1] === `${param}.weight`)!.name
    expect(pooledConvs(specialized.graph, specialized.shapes)).toEqual(['padded', 'unpadded', 'strided'].map(convOf))
    // one conv per offset (4 + 4 + 9), or for one input channel one per split conv; and the three others
    const rewritten = splitPooledConvs(specialized.graph, specialized.shapes).nodes.filter((n) => n.op === 'Conv')
    expect(rewritten).toHaveLength(channels === 1 ? 3 + 3 : 17 + 3)
    await checkAgainstReference(model, signedBatch(model, size, 41), model.initParameters(5))
    // the inference graph (evaluation, export) keeps the pools
    const inference = onnx.ModelProto.decode(buildInferenceGraph(model.forward, model.layout, size).bytes).graph!.node!.map((n) => n.opType!)
    expect(inference.filter((op) => op === 'MaxPool')).toHaveLength(6)
    const training = onnx.ModelProto.decode(trainingGraphBytes(model, size)).graph!.node!.map((n) => n.opType!)
    expect(training.filter((op) => op === 'Max')).toHaveLength(3)
  })

  it('convolutions with a one-pixel output train as Gemms over the batch, with the float64 reference\'s gradients (taps over padding get 0)', async () => {
    // [3, 2, 2] -> 3x3 stride 2 pad 1 (the window covers the whole input with kernel rows and
    // columns 1..2) -> [4, 1, 1] -> 3x3 pad 1 (only the centre tap meets the input) -> [5, 1, 1];
    // a 2x2 conv without padding (the plain case) and a 1x1 stride 2 one (resnet's downsample:
    // its window is the input's first pixel, picked by a 0/1 MatMul) -> [5, 1, 1], added
    const g = new ForwardGraphBuilder()
    let x = g.relu(g.conv(g.input, 'strided', 3, 4, 3, { stride: 2, pad: 1 }))
    x = g.relu(g.conv(x, 'centre', 4, 5, 3, { pad: 1, bias: false }))
    const plain = g.conv(g.input, 'plain', 3, 5, 2)
    const corner = g.conv(g.input, 'corner', 3, 5, 1, { stride: 2 })
    const model = g.build('one-pixel', [3, 2, 2], 10, g.linear(g.flatten(g.sum(g.sum(x, plain), corner)), 'fc', 5, 10))
    const size = 5
    const batch = signedBatch(model, size, 23)
    await checkAgainstReference(model, batch, model.initParameters(4))
    const specialized = specializeGraph(model.forward, model.layout, size)
    expect(onePixelConvs(specialized.graph, specialized.shapes)).toHaveLength(4)
    const training = onnx.ModelProto.decode(trainingGraphBytes(model, size)).graph!.node!.map((n) => n.opType!)
    expect(training).not.toContain('Conv')
    // no Slice (and no Pad in its backward, which ran one value at a time)
    expect(training).not.toContain('Slice')
    expect(training).not.toContain('Pad')
    // the gradient of the centre conv's weights is exactly zero outside the centre tap
    const computer = createOnnxGradientComputer(model)
    computers.push(computer)
    const { gradient } = await computer.computeGradient(model.initParameters(4), batch)
    const spec = model.layout.specs.find((s) => s.name === 'centre.weight')!
    const centre = gradient.subarray(spec.offset, spec.offset + spec.size)
    for (let i = 0; i < centre.length; i++) if (i % 9 !== 4) expect(centre[i]).toBe(0)
    expect(centre.some((v, i) => i % 9 === 4 && v !== 0)).toBe(true)

    // the in-process graph outputs only the taps a kernel is read through (the strided conv's 2x2
    // of 9, the centre conv's 1 of 9) and scatters them; the portable graph outputs whole kernels
    const compact = buildTrainingGraph(model.forward, model.layout, size, { compactTapGradients: true })
    expect(compact.gradientTaps?.map((t) => t === undefined ? undefined : t.columns.flat())).toEqual(model.layout.specs.map((s) =>
      s.name === 'strided.weight' ? [4, 5, 7, 8] : s.name === 'centre.weight' ? [4] : undefined))
    const declared = onnx.ModelProto.decode(compact.bytes).graph!.output!.find((o) => o.name === compact.gradientNames[model.layout.specs.indexOf(spec)])!
    expect(declared.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue))).toEqual([5, 4])
    expect(buildTrainingGraph(model.forward, model.layout, size).gradientTaps).toBeUndefined()
    // bit for bit the whole kernels' gradient, step after step into one reused buffer (the taps
    // it never writes keep their zeros)
    const portable = buildTrainingGraph(model.forward, model.layout, size)
    const whole = await ort.InferenceSession.create(portable.bytes)
    const reused = createOnnxGradientComputer(model, { nchwc: false, reuseGradientBuffer: true })
    computers.push(reused)
    for (const seed of [4, 5, 6]) {
      const params = model.initParameters(seed)
      const step = signedBatch(model, size, 40 + seed)
      const expected = await runTrainingGraph(whole, portable, model, params, step)
      const actual = await reused.computeGradient(params, step)
      expect(actual.gradient.some((v) => v !== 0)).toBe(true)
      let differing = 0
      actual.gradient.forEach((v, i) => { if (!Object.is(v, expected.gradient[i])) differing++ })
      expect(differing, `seed ${seed}`).toBe(0)
    }
    // into a caller's buffer (an optimizer's, as the trainer passes it) that held other values:
    // zeroed where the taps never write before the first run into it, then the same bits
    const into = createOptimizer(OptimizerConfigSchema.parse({ type: 'sgd' }), model.layout.totalSize).localGradientBuffer().fill(7)
    for (const seed of [7, 8]) {
      const params = model.initParameters(seed)
      const step = signedBatch(model, size, 40 + seed)
      const expected = await runTrainingGraph(whole, portable, model, params, step)
      const actual = await reused.computeGradient(params, step, undefined, into)
      expect(actual.gradient).toBe(into)
      let differing = 0
      into.forEach((v, i) => { if (!Object.is(v, expected.gradient[i])) differing++ })
      expect(differing, `seed ${seed} into the caller's buffer`).toBe(0)
    }
    await whole.release()
  })


  it('a fully connected layer over a broadcast 1x1 map (vgg11\'s AdaptiveAvgPool2d(7) from 1x1) trains over the map\'s channels, with the float64 reference\'s gradients, its weight gradient fetched per channel and broadcast', async () => {
    const g = new ForwardGraphBuilder()
    // [N, 8, 1, 1] (a 4x4 kernel over a 4x4 input), broadcast to [N, 8, 3, 3], 72 features
    const pixel = g.relu(g.conv(g.input, 'c', 3, 8, 4))
    const hidden = g.relu(g.linear(g.flatten(g.expand(pixel, [1, 8, 3, 3])), 'fc', 72, 16))
    const model = g.build('broadcast-fc', [3, 4, 4], 10, g.linear(hidden, 'out', 16, 10))
    const size = 6
    await checkAgainstReference(model, signedBatch(model, size, 44), model.initParameters(14))

    // neither the training nor the evaluation graph has the Expand (evaluation: checked against the
    // reference's logits above); the export keeps the model's nodes
    const compact = buildTrainingGraph(model.forward, model.layout, size, { compactTapGradients: true })
    const nodes = onnx.ModelProto.decode(compact.bytes).graph!.node!
    expect(nodes.map((n) => n.opType)).not.toContain('Expand')
    // the positions summed by a ReduceSum, not a MatMul by the ones column the rewrite reads them through
    expect(nodes.map((n) => n.opType)).not.toContain('MatMul')
    const weightRows = nodes.find((n) => n.opType === 'Reshape' && n.input![0] === 'fc.weight')!.output![0]
    expect(nodes.filter((n) => n.opType === 'ReduceSum' && n.input![0] === weightRows)).toHaveLength(1)
    expect(onnx.ModelProto.decode(buildInferenceGraph(model.forward, model.layout, size).bytes).graph!.node!.map((n) => n.opType)).not.toContain('Expand')
    expect(onnx.ModelProto.decode(exportForwardOnnx(model, model.initParameters(14)).bytes).graph!.node!.map((n) => n.opType)).toContain('Expand')
    // fc's gradient leaves the graph as 16 x 8 values, one per filter and channel, for all 9 positions
    const fc = model.layout.specs.findIndex((s) => s.name === 'fc.weight')
    expect(compact.gradientTaps?.map((t) => t === undefined ? undefined : t.columns)).toEqual(model.layout.specs.map((_, i) => i === fc ? [[0, 1, 2, 3, 4, 5, 6, 7, 8]] : undefined))
    const declared = onnx.ModelProto.decode(compact.bytes).graph!.output!.find((o) => o.name === compact.gradientNames[fc])!
    expect(declared.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue)).reduce((a, b) => a * b, 1)).toBe(16 * 8)

    // bit for bit the portable graph's (whose MatMul backward writes all 9 copies itself), into a reused buffer
    const portable = buildTrainingGraph(model.forward, model.layout, size)
    const whole = await ort.InferenceSession.create(portable.bytes)
    const reused = createOnnxGradientComputer(model, { nchwc: false, reuseGradientBuffer: true })
    computers.push(reused)
    for (const seed of [4, 5]) {
      const params = model.initParameters(seed)
      const step = signedBatch(model, size, 50 + seed)
      const expected = await runTrainingGraph(whole, portable, model, params, step)
      const actual = await reused.computeGradient(params, step)
      const spec = model.layout.specs[fc]
      const fcGradient = actual.gradient.subarray(spec.offset, spec.offset + spec.size)
      // each (filter, channel) holds one value at its 9 positions, not all of them zero
      for (let i = 0; i < fcGradient.length; i++) expect(fcGradient[i]).toBe(fcGradient[i - (i % 9)])
      expect(fcGradient.some((v) => v !== 0)).toBe(true)
      let differing = 0
      actual.gradient.forEach((v, i) => { if (!Object.is(v, expected.gradient[i])) differing++ })
      expect(differing, `seed ${seed}`).toBe(0)
    }
    await whole.release()
  })
  it('a one-pixel-output convolution on a map over 8x8 takes its window by a Slice, with the float64 reference\'s gradients', async () => {
    // [2, 9, 9] -> 2x2 stride 8 (reads rows and columns 0..1 of 9) -> [3, 1, 1]
    const g = new ForwardGraphBuilder()
    const model = g.build('one-pixel-window', [2, 9, 9], 10, g.linear(g.flatten(g.conv(g.input, 'window', 2, 3, 2, { stride: 8 })), 'fc', 3, 10))
    const size = 4
    await checkAgainstReference(model, signedBatch(model, size, 19), model.initParameters(3))
    const specialized = specializeGraph(model.forward, model.layout, size)
    expect(onePixelConvs(specialized.graph, specialized.shapes)).toHaveLength(1)
    const training = onnx.ModelProto.decode(trainingGraphBytes(model, size)).graph!.node!.map((n) => n.opType!)
    expect(training).not.toContain('Conv')
    expect(training).toContain('Slice')
  })

  it('depthwise convolutions on small maps train as batched MatMuls, with the float64 reference\'s gradients (strided, one pixel)', async () => {
    // 4 channels on 4x4: 3x3 pad 1 (4x4 -> 4x4), 5x5 stride 2 pad 2 without bias (-> 2x2),
    // 3x3 pad 1 (-> 2x2), 3x3 stride 2 pad 1 (-> 1x1 from four pixels), then 5x5 pad 2
    // on one pixel (only the centre tap meets it: a Mul)
    const g = new ForwardGraphBuilder()
    let x = g.relu(g.conv(g.input, 'same', 4, 4, 3, { pad: 1, groups: 4 }))
    x = g.conv(x, 'strided', 4, 4, 5, { stride: 2, pad: 2, groups: 4, bias: false })
    x = g.relu(g.conv(x, 'small', 4, 4, 3, { pad: 1, groups: 4 }))
    x = g.conv(x, 'to_one', 4, 4, 3, { stride: 2, pad: 1, groups: 4 })
    x = g.conv(x, 'centre', 4, 4, 5, { pad: 2, groups: 4 })
    const model = g.build('depthwise-small', [4, 4, 4], 10, g.linear(g.flatten(x), 'fc', 4, 10))
    const size = 5
    const batch = signedBatch(model, size, 29)
    await checkAgainstReference(model, batch, model.initParameters(6))
    const specialized = specializeGraph(model.forward, model.layout, size)
    expect(denseDepthwiseConvs(specialized.graph, specialized.shapes)).toHaveLength(5)
    const training = onnx.ModelProto.decode(trainingGraphBytes(model, size)).graph!.node!.map((n) => n.opType!)
    expect(training).not.toContain('Conv')
    expect(training).not.toContain('ConvTranspose')
    // on one pixel only the centre tap has a gradient, the rest is exactly zero
    const computer = createOnnxGradientComputer(model)
    computers.push(computer)
    const { gradient } = await computer.computeGradient(model.initParameters(6), batch)
    const spec = model.layout.specs.find((s) => s.name === 'centre.weight')!
    const centre = gradient.subarray(spec.offset, spec.offset + spec.size)
    for (let i = 0; i < centre.length; i++) if (i % 25 !== 12) expect(centre[i]).toBe(0)
    expect(centre.some((v, i) => i % 25 === 12 && v !== 0)).toBe(true)
  })

  it('a conv on a 6x6 map (33-64 output pixels) runs as Gemms in a graph without NCHWc (a worker\'s) and through NCHWc where the graph has a block', async () => {
    const g = new ForwardGraphBuilder()
    const x = g.relu(g.conv(g.input, 'six', 16, 16, 3, { pad: 1 }))
    const model = g.build('six-by-six', [16, 6, 6], 10, g.linear(g.flatten(x), 'fc', 576, 10))
    const portable = onnx.ModelProto.decode(trainingGraphBytes(model, 4)).graph!.node!
    expect(portable.map((n) => n.opType)).not.toContain('Conv')
    expect(portable.filter((n) => n.opType === 'Gemm').length).toBeGreaterThanOrEqual(2)
    const blocked = onnx.ModelProto.decode(buildTrainingGraph(model.forward, model.layout, 4, { nchwcBlock: 16 }).bytes).graph!.node!
    expect(blocked.some((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv')).toBe(true)
    await checkAgainstReference(model, signedBatch(model, 4, 9), model.initParameters(2))
  })

  it('convolutions on small maps train as Gemms over the whole batch, with the float64 reference\'s gradients (padded, strided, pointwise, widening, even kernel)', async () => {
    // [3, 5, 6] -> 3x3 pad 1 (5x6) -> 3x3 stride 2 without padding (2x2: the last column is read
    // by no window, its gradient is 0) -> 1x1 without bias (2x2) -> 1x1 widening 6 -> 14 -> 2x2
    // pad 1 (3x3). The strided conv's dY columns would be 9x its forward's (mostly zeros)
    // and the widening conv's 2.3x: their dX is col2im (a Gemm, then each input pixel's taps
    // gathered and summed; the 1x1 one needs no gather), the others' a Gemm over dY's columns
    const g = new ForwardGraphBuilder()
    let x = g.relu(g.conv(g.input, 'same', 3, 4, 3, { pad: 1 }))
    x = g.relu(g.conv(x, 'strided', 4, 5, 3, { stride: 2 }))
    x = g.conv(x, 'pointwise', 5, 6, 1, { bias: false })
    x = g.relu(g.conv(x, 'widen', 6, 14, 1))
    x = g.conv(x, 'even', 14, 4, 2, { pad: 1 })
    const model = g.build('small-maps', [3, 5, 6], 10, g.linear(g.flatten(x), 'fc', 36, 10))
    const size = 5
    const batch = signedBatch(model, size, 31)
    await checkAgainstReference(model, batch, model.initParameters(8))
    const trainingGraph = onnx.ModelProto.decode(trainingGraphBytes(model, size)).graph!
    const training = trainingGraph.node!.map((n) => n.opType!)
    expect(training).not.toContain('Conv')
    expect(training).not.toContain('ConvTranspose')
    // each kernel's gradient leaves the graph in its Gemm's shape [M, C kh kw] (no copy into [M, C, kh, kw])
    const declared = (param: string): number[] => {
      const output = trainingGraph.output!.find((o) => o.name === gradientOutputName(model.layout.specs.findIndex((s) => s.name === param)))!
      return output.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue))
    }
    expect(declared('same.weight')).toEqual([4, 27])
    expect(declared('widen.weight')).toEqual([14, 6])
    expect(declared('same.bias')).toEqual([4])
    expect(training.filter((op) => op === 'Gemm').length).toBeGreaterThanOrEqual(5 * 3 - 1)
    // the inference graph (evaluation, export) keeps the convolutions
    const inference = onnx.ModelProto.decode(buildInferenceGraph(model.forward, model.layout, size).bytes).graph!.node!.map((n) => n.opType!)
    expect(inference.filter((op) => op === 'Conv')).toHaveLength(5)
  })

  it('convolutions reading fewer pixels than their kernel has taps train as one dense Gemm each, with the float64 reference\'s gradients', async () => {
    // [3, 2, 2] -> 3x3 pad 1 (2x2) -> 3x3 pad 1 without bias (2x2) -> 3x3 pad 2 (4x4 from four
    // pixels: more outputs than inputs) -> 2x2 on 4x4 (16 pixels, 4 taps: stays a Gemm over columns)
    // -> 5x5 stride 2 pad 2 on the 3x3 (9 pixels, 25 taps: dense, each output's taps stride apart)
    const g = new ForwardGraphBuilder()
    let x = g.relu(g.conv(g.input, 'same', 3, 5, 3, { pad: 1 }))
    x = g.relu(g.conv(x, 'nobias', 5, 6, 3, { pad: 1, bias: false }))
    x = g.relu(g.conv(x, 'grow', 6, 4, 3, { pad: 2 }))
    x = g.relu(g.conv(x, 'columns', 4, 3, 2))
    x = g.conv(x, 'strided', 3, 4, 5, { stride: 2, pad: 2 })
    const model = g.build('dense-small', [3, 2, 2], 10, g.linear(g.flatten(x), 'fc', 16, 10))
    const size = 5
    const batch = signedBatch(model, size, 37)
    await checkAgainstReference(model, batch, model.initParameters(9))
    const specialized = specializeGraph(model.forward, model.layout, size)
    const convs = specialized.graph.nodes.filter((n) => n.op === 'Conv').map((n) => n.name)
    expect(denseSmallInputConvs(specialized.graph, specialized.shapes)).toEqual([...convs.slice(0, 3), convs[4]])
    const training = onnx.ModelProto.decode(trainingGraphBytes(model, size)).graph!.node!.map((n) => n.opType!)
    expect(training).not.toContain('Conv')
    expect(training).not.toContain('ConvTranspose')
    // the dense convs gather no columns: the Gathers left are the 2x2 conv's (its columns, its dY's)
    expect(training.filter((op) => op === 'Gather').length).toBeLessThanOrEqual(2)

    // ONNX Runtime's optimized graph transposes no product: each dense kernel's gradient is
    // (dY^T S) in one FusedMatMul, not S^T dY transposed to [M, C, taps] after (1.3-1.5 ms for
    // each of resnet18's 256x9x256 kernels)
    const dir = mkdtempSync(join(tmpdir(), 'p2pmld-optimized-'))
    try {
      const path = join(dir, 'optimized.onnx')
      const session = await ort.InferenceSession.create(trainingGraphBytes(model, size), { ...gradientSessionOptions(1), optimizedModelFilePath: path })
      await session.release()
      const optimized = onnx.ModelProto.decode(readFileSync(path)).graph!.node!
      const producers = new Map(optimized.flatMap((n) => n.output!.map((o) => [o, n.opType!] as const)))
      const transposedProducts = optimized.filter((n) => n.opType === 'Transpose' && /MatMul$/.test(producers.get(n.input![0]) ?? '')).map((n) => n.name)
      expect(transposedProducts).toEqual([])
      expect(optimized.filter((n) => n.opType === 'FusedMatMul').length).toBeGreaterThanOrEqual(3)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('convolutions through ONNX Runtime\'s NCHWc kernels (forward, stride-1 input gradient, weight gradient over a batch of 16) match the float64 reference', async () => {
    // [3, 20, 20] -> 3x3 pad 1 to 16 channels (an input read as NCHW) -> 5x5 pad 1 to 6 (a
    // blocked input; 6 filters padded to a block; dX a full convolution padded by 3) -> 3x3 stride
    // 2 pad 1 to 16 without bias (dX stays ConvTranspose, dW dilated by the stride)
    // -> 2x2 pad 1 to 4 (an even kernel): every map keeps more than 32 pixels (no Gemm path)
    const g = new ForwardGraphBuilder()
    let x = g.relu(g.conv(g.input, 'c1', 3, 16, 3, { pad: 1 }))
    x = g.relu(g.conv(x, 'c2', 16, 6, 5, { pad: 1 }))
    x = g.relu(g.conv(x, 'c3', 6, 16, 3, { stride: 2, pad: 1, bias: false }))
    x = g.conv(x, 'c4', 16, 4, 2, { pad: 1 })
    const model = g.build('nchwc', [3, 20, 20], 10, g.linear(g.flatten(x), 'fc', 400, 10))
    const size = 16
    const batch = signedBatch(model, size, 41)
    await checkAgainstReference(model, batch, model.initParameters(9))

    // the computer above ran these NCHWc convolutions: 4 forward, dX of c2 and c4, dW of c1-c4
    // (the strided c3's dilated by its stride)
    const block = await detectNchwcBlock()
    expect([8, 16], 'MLAS has NCHWc kernels on the x86-64 machines this project runs on (AVX2: 8, AVX-512: 16)').toContain(block)
    const nodes = onnx.ModelProto.decode(buildTrainingGraph(model.forward, model.layout, size, { nchwcBlock: block }).bytes).graph!.node!
    const nchwcConvs = nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv')
    expect(nchwcConvs).toHaveLength(10)
    // each dW conv (dY's map as its kernel: 9x9 and larger here) reads an input padded by a Pad
    // before it and pads nothing itself, so MLAS computes every output pixel in its interior kernel
    const ints = (n: typeof nodes[number], name: string): number[] => (n.attribute!.find((a) => a.name === name)?.ints ?? []).map(Number)
    const weightGradients = nchwcConvs.filter((n) => ints(n, 'kernel_shape')[0] >= 9)
    expect(weightGradients).toHaveLength(4)
    expect(weightGradients.map((n) => ints(n, 'pads'))).toEqual(new Array(4).fill([0, 0, 0, 0]))
    expect(weightGradients.map((n) => ints(n, 'dilations')[0]).sort()).toEqual([1, 1, 1, 2])
    expect(nodes.filter((n) => n.opType === 'ConvTranspose')).toHaveLength(1)
    // c1-c3's ReLUs are the kernels' fused activation (each Relu node an Identity)
    expect(nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.attribute!.some((a) => a.name === 'activation' && a.s !== undefined && new TextDecoder().decode(a.s as Uint8Array) === 'Relu'))).toHaveLength(3)
    expect(nodes.filter((n) => n.opType === 'Relu')).toHaveLength(0)
    // the portable graph (what offload workers run) keeps ONNX's own operators
    expect(onnx.ModelProto.decode(trainingGraphBytes(model, size)).graph!.node!.filter((n) => n.domain === NCHWC_DOMAIN)).toHaveLength(0)

    // a session of one intra-op thread: an input gradient whose channels would pad to a block
    // stays ConvTranspose (lenet5's conv2, 6 channels: 1.6 against 4.6 ms on one thread); with
    // two threads it is the NCHWc full convolution (2.2 against ConvTranspose's 3.5)
    const lenet = createModel('lenet5')
    const opsWith = (intraOpThreads: number): string[] => onnx.ModelProto.decode(buildTrainingGraph(lenet.forward, lenet.layout, size, { nchwcBlock: block, intraOpThreads }).bytes).graph!.node!.map((n) => `${n.domain ?? ''}:${n.opType!}`)
    expect(opsWith(1).filter((op) => op === ':ConvTranspose')).toHaveLength(1)
    expect(opsWith(2).filter((op) => op === ':ConvTranspose')).toHaveLength(0)
    // on two threads that input gradient is two NCHWc convs by kernel rows (the next test) where
    // the block is AVX-512's 16 (6 channels fill 6/16 of it); with AVX2's 8 (6/8 full) it is one
    // full convolution: (8 x 5 x 14 block-taps against 32 x 18 by rows)
    expect(opsWith(1).filter((op) => op === `${NCHWC_DOMAIN}:Conv`).length).toBe(opsWith(2).filter((op) => op === `${NCHWC_DOMAIN}:Conv`).length - (block === 16 ? 2 : 1))
  })

  it('an input gradient whose channels fill an NCHWc block poorly runs by kernel rows (a 1 x kw conv, then a kh x 1 conv summing the shifted rows), with the float64 reference\'s gradients', async () => {
    // c2's dX as the full convolution would pad its C output channels to a block; by rows its
    // kh C channels fill theirs better (16: 6 -> 30 of 32; 8: 3 -> 15 of 16)
    const block = await detectNchwcBlock()
    const c = block === 16 ? 6 : 3
    const g = new ForwardGraphBuilder()
    let x = g.relu(g.conv(g.input, 'c1', 3, c, 3, { pad: 1 }))
    x = g.relu(g.conv(x, 'c2', c, 16, 5, { pad: 1 }))
    const model = g.build('by-rows', [3, 16, 16], 10, g.linear(g.flatten(x), 'fc', 16 * 14 * 14, 10))
    const size = 16
    await checkAgainstReference(model, signedBatch(model, size, 43), model.initParameters(13))
    const kernels = (intraOpThreads: number): string[] => onnx.ModelProto.decode(buildTrainingGraph(model.forward, model.layout, size, { nchwcBlock: block, intraOpThreads }).bytes).graph!.node!
      .filter((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv')
      .map((n) => (n.attribute!.find((a) => a.name === 'kernel_shape')!.ints ?? []).map(Number).join('x'))
    // forward c1 and c2; dW of c1 and c2 (batch-as-channels convs: dY's maps as the kernel); c2's dX by rows
    expect(kernels(2).sort()).toEqual(['14x14', '16x16', '1x5', '3x3', '5x1', '5x5'])
    // one intra-op thread: ConvTranspose (lenet5's conv2 on one thread at b256: 15.3-16.1 ms a step against 17.1-18.0 by rows)
    expect(kernels(1).sort()).toEqual(['14x14', '16x16', '3x3', '5x5'])
  })

  it('training graphs hold no node whose outputs nothing reads (a dead Reshape left ORT copying gradients into the outputs)', () => {
    // a Gemm's dW reshaped to the kernel's shape is output in the Gemm's own shape; its Reshape,
    // left in, gave the Gemm's result a second reader, so ORT kept the Identity into the output
    const small = new ForwardGraphBuilder()
    const conv = small.relu(small.conv(small.input, 'c', 3, 8, 3, { pad: 1 }))
    const models = [createModel('lenet5'), createModel('convnet-test'), small.build('gemm-conv', [3, 6, 6], 10, small.linear(small.flatten(conv), 'fc', 288, 10))]
    for (const model of models) {
      const graph = onnx.ModelProto.decode(trainingGraphBytes(model, 4)).graph!
      const read = new Set([...graph.node!.flatMap((n) => n.input!), ...graph.output!.map((o) => o.name!)])
      const dead = graph.node!.filter((n) => !n.output!.some((o) => read.has(o))).map((n) => `${n.opType!} ${n.name!}`)
      expect(dead, model.name).toEqual([])
      expect(graph.initializer!.filter((t) => !read.has(t.name!)).map((t) => t.name), model.name).toEqual([])
      expect(graph.node!.some((n) => n.opType === 'Gemm'), model.name).toBe(true)
    }
  })

  it('overlapping max pools (stride 2 and 1, padded, ceil_mode): an input that is the max of several windows gets their gradients summed', async () => {
    // [1, 7, 7] -> 1x1 conv to 2 channels (positive weights: the input's max stays the max) ->
    // 3x3 pool at stride 2 -> [2, 3, 3]; beside it the same into a 3x3 pool at stride 1 ->
    // [2, 5, 5], where up to nine windows share an input; into one padded by 1 -> [2, 4, 4]; and
    // a 2x2 conv padded to 8x8 into one with ceil_mode, whose last windows pass the map -> [2, 4, 4]
    const g = new ForwardGraphBuilder()
    const s2 = g.maxPool(g.conv(g.input, 'pre', 1, 2, 1), 3, 2)
    const s1 = g.maxPool(g.conv(g.input, 'pre1', 1, 2, 1), 3, 1)
    const padded = g.maxPool(g.conv(g.input, 'pre2', 1, 2, 1), 3, 2, { pad: 1 })
    const ceil = g.maxPool(g.conv(g.input, 'pre3', 1, 2, 2, { pad: 1 }), 3, 2, { ceil: true })
    const heads = ([[s2, 18], [s1, 50], [padded, 32], [ceil, 32]] as const).map(([x, n], i) => g.linear(g.flatten(x), `fc${i}`, n, 10))
    const model = g.build('shared-argmax', [1, 7, 7], 10, heads.reduce((sum, head) => g.sum(sum, head)))
    const params = model.initParameters(3)
    for (const spec of model.layout.specs.filter((sp) => sp.name.endsWith('.weight') && sp.name.startsWith('pre'))) {
      for (let i = spec.offset; i < spec.offset + spec.size; i++) params[i] = Math.abs(params[i]) + 0.1
    }
    const batch = signedBatch(model, 4, 5)
    const inputs = batch.inputs as Float32Array
    // (2, 2): the max of the first four stride-2 windows; (2, 0): of windows (0, 0) and (1, 0);
    // (0, 2): of windows (0, 0) and (0, 1); the fourth sample as drawn
    inputs[2 * 7 + 2] = 5
    inputs[49 + 2 * 7] = 5
    inputs[98 + 2] = 5
    await checkAgainstReference(model, batch, params)
    const ops = onnx.ModelProto.decode(trainingGraphBytes(model, 4)).graph!.node!.map((n) => n.opType!)
    // each routed by a scatter-add (MaxUnpool would keep one window's gradient of a shared input)
    expect(ops.filter((op) => op === 'ScatterElements')).toHaveLength(4)
    expect(ops).not.toContain('MaxUnpool')
  })

  it('max pools with one window along an axis route their gradient by MaxUnpool (squeezenet1_1\'s last pool on 32x32), with the float64 reference\'s gradients', async () => {
    const opsOf = (model: ModelDefinition): string[] => onnx.ModelProto.decode(trainingGraphBytes(model, 4)).graph!.node!.map((n) => n.opType!)
    // [1, 3, 3]: a 3x3 pool at stride 2 over the 3x3 map -> 1x1; one padded by 1 over a 2x2 map -> 1x1
    const g = new ForwardGraphBuilder()
    const whole = g.maxPool(g.relu(g.conv(g.input, 'pa', 1, 2, 1)), 3, 2)
    const padded = g.maxPool(g.conv(g.input, 'pb', 1, 2, 2), 3, 2, { pad: 1 })
    const single = g.build('one-window', [1, 3, 3], 10, g.sum(g.linear(g.flatten(whole), 'fa', 2, 10), g.linear(g.flatten(padded), 'fb', 2, 10)))
    await checkAgainstReference(single, signedBatch(single, 4, 7), single.initParameters(4))
    expect(opsOf(single).filter((op) => op === 'MaxUnpool')).toHaveLength(2)
    expect(opsOf(single)).not.toContain('ScatterElements')

    // [1, 3, 9]: one window down the rows and disjoint ones across (3x3 at stride 3 -> 1x3) unpools;
    // one window down but overlapping across (stride 2 -> 1x4) keeps the scatter-add
    const h = new ForwardGraphBuilder()
    // (after two convs: a conv of the batch input before a disjoint pool trains as strided convs)
    const across = h.maxPool(h.conv(h.conv(h.input, 'qa0', 1, 2, 1), 'qa', 2, 2, 1), 3, 3)
    const overlapping = h.maxPool(h.conv(h.input, 'qb', 1, 2, 1), 3, 2)
    const mixed = h.build('one-row-of-windows', [1, 3, 9], 10, h.sum(h.linear(h.flatten(across), 'fa', 6, 10), h.linear(h.flatten(overlapping), 'fb', 8, 10)))
    const batch = signedBatch(mixed, 4, 8)
    // a row's max shared by two overlapping windows: (1, 4) sits in windows 1 and 2 at stride 2
    ;(batch.inputs as Float32Array)[9 + 4] = 5
    const params = mixed.initParameters(6)
    for (const spec of mixed.layout.specs.filter((sp) => sp.name.startsWith('q') && sp.name.endsWith('.weight'))) {
      for (let i = spec.offset; i < spec.offset + spec.size; i++) params[i] = Math.abs(params[i]) + 0.1
    }
    await checkAgainstReference(mixed, batch, params)
    expect(opsOf(mixed).filter((op) => op === 'MaxUnpool')).toHaveLength(1)
    expect(opsOf(mixed).filter((op) => op === 'ScatterElements')).toHaveLength(1)
  })

  it('max pooling backward: MaxUnpool where windows are disjoint (lenet5), scatter-add where they overlap (convnet-test)', () => {
    // both paths are checked against the float64 reference above; this keeps each one covered
    const opsOf = (name: string): string[] => onnx.ModelProto.decode(trainingGraphBytes(createModel(name), 4)).graph!.node!.map((n) => n.opType!)
    const lenet = opsOf('lenet5')
    // its first pool is split by window offset (pool-split-convs.ts), its second unpooled
    expect(lenet.filter((op) => op === 'MaxUnpool')).toHaveLength(1)
    expect(lenet.filter((op) => op === 'Max')).toHaveLength(1)
    expect(lenet).not.toContain('ScatterElements')
    const convnet = opsOf('convnet-test')
    expect(convnet).toContain('ScatterElements')
    expect(convnet).not.toContain('MaxUnpool')
  })
})

describe('the gradient computer', () => {
  it('reads parameters from views with a non-zero byteOffset and returns the same result as a fresh copy', async () => {
    const model = createModel('lenet5')
    const batch = digitBatch(model, 16)
    const fresh = model.initParameters(9)
    const backing = new Float32Array(fresh.length + 37).fill(Number.NaN)
    backing.set(fresh, 37)
    const view = backing.subarray(37)
    expect(view.byteOffset).toBe(37 * 4)

    const computer = createOnnxGradientComputer(model, { intraOpThreads: 1 })
    computers.push(computer)
    const a = await computer.computeGradient(fresh, batch)
    const b = await computer.computeGradient(view, batch)
    expect(b.loss).toBe(a.loss)
    expect(b.gradient).toEqual(a.gradient)
    // the NaN padding around the view was never read
    expect(Number.isFinite(b.loss)).toBe(true)
  })

  it('is deterministic and keeps results of earlier steps intact', async () => {
    const model = createModel('mlp')
    const computer = createOnnxGradientComputer(model)
    computers.push(computer)
    const params = model.initParameters(1)
    const first = await computer.computeGradient(params, randomBatch(model, 32, 1))
    const kept = first.gradient.slice()
    await computer.computeGradient(params, randomBatch(model, 32, 2))
    const again = await computer.computeGradient(params, randomBatch(model, 32, 1))
    expect(first.gradient).toEqual(kept)
    expect(again.gradient).toEqual(kept)
    expect(again.loss).toBe(first.loss)
  })

  it('close() waits for steps in flight, then later calls fail with a typed error', async () => {
    const model = createModel('lenet5')
    const computer = createOnnxGradientComputer(model)
    const params = model.initParameters(1)
    const batch = digitBatch(model, 32)
    await computer.computeGradient(params, batch)
    const running = computer.computeGradient(params, batch)
    await computer.close()
    const finished = await running
    expect(Number.isFinite(finished.loss)).toBe(true)
    expect(finished.gradient.some((v) => v !== 0)).toBe(true)
    await expect(computer.evaluate(params, batch)).rejects.toThrow(GradientComputerClosedError)
  })

  it('rejects a parameter vector of the wrong length and refuses work after close', async () => {
    const model = createModel('mlp')
    const computer = createOnnxGradientComputer(model)
    const batch = randomBatch(model, 4, 1)
    await expect(computer.computeGradient(new Float32Array(10), batch)).rejects.toThrow(/expected 101770 parameters/)
    await computer.close()
    await computer.close()
    await expect(computer.computeGradient(model.initParameters(1), batch)).rejects.toThrow(/closed/)
  })
})

describe('batch validation and the exported training graph', () => {
  it('rejects batches whose sizes or labels do not fit the model', async () => {
    const model = createModel('mlp')
    const computer = createOnnxGradientComputer(model)
    computers.push(computer)
    const params = model.initParameters(1)
    const good = randomBatch(model, 4, 1)
    await expect(computer.computeGradient(params, { ...good, inputs: good.inputs.subarray(1) })).rejects.toThrow(/needs 3136 input values/)
    await expect(computer.computeGradient(params, { ...good, labels: Int32Array.of(0, 1, 10, 2) })).rejects.toThrow(/label 10 is outside \[0, 10\)/)
    await expect(computer.evaluate(params, { ...good, labels: Int32Array.of(0, 1, -1, 2) })).rejects.toThrow(/label -1/)
  })

  it('trainingGraphBytes is deterministic and, run in a separate session, gives bit-identical gradients', async () => {
    const model = createModel('lenet5')
    const bytes = trainingGraphBytes(model, 8)
    expect(trainingGraphBytes(createModel('lenet5'), 8)).toEqual(bytes)
    const batch = digitBatch(model, 8)
    const params = model.initParameters(4)

    const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, graphOptimizationLevel: 'all', logSeverityLevel: 3 })
    const feeds: Record<string, ort.Tensor> = {
      [model.forward.input]: new ort.Tensor('float32', batch.inputs, [8, 1, 28, 28]),
      [TRAINING_INPUT_LABELS]: new ort.Tensor('float32', oneHot(batch.labels, 10), [8, 10])
    }
    for (const spec of model.layout.specs) feeds[spec.name] = new ort.Tensor('float32', params.subarray(spec.offset, spec.offset + spec.size), [...spec.shape])
    const out = await session.run(feeds)
    await session.release()

    // the portable graph is the one without NCHWc (which holds this machine's block size)
    const computer = createOnnxGradientComputer(model, { nchwc: false })
    computers.push(computer)
    const result = await computer.computeGradient(params, batch)
    expect((out[TRAINING_OUTPUT_LOSS].data as Float32Array)[0]).toBe(result.loss)
    model.layout.specs.forEach((spec, i) => {
      expect(out[gradientOutputName(i)].data as Float32Array).toEqual(result.gradient.subarray(spec.offset, spec.offset + spec.size))
    })
  })
})
