/** Issue 14: the trained model as a forward ONNX graph with its parameters as initializers. */
import * as ort from 'onnxruntime-node'
import { describe, expect, it } from 'vitest'
import { buildInferenceGraph } from '../../ml/autodiff/training-graph.js'
import { createRng } from '../../ml/core/rng.js'
import { INPUT_NORMALIZATION_KEY } from '../../ml/data/normalize.js'
import { createModel } from '../../ml/models/zoo.js'
import type { ModelDefinition } from '../../ml/models/model-definition.js'
import { trainingGraphBytes } from '../../ml/engine/onnx-gradient-computer.js'
import { exportForwardOnnx } from '../../ml/onnx/export-forward.js'
import { loadOnnxModel } from '../../ml/onnx/load-onnx-model.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'

function batchOf(model: ModelDefinition, n: number, seed: number): Float32Array {
  const rng = createRng(seed)
  return Float32Array.from({ length: n * model.sampleShape.reduce((a, b) => a * b, 1) }, () => rng.nextFloat() * 2 - 1)
}

/** logits of the daemon's own inference graph (parameters fed as inputs) */
async function referenceLogits(model: ModelDefinition, params: Float32Array, x: Float32Array, n: number): Promise<Float32Array> {
  const graph = buildInferenceGraph(model.forward, model.layout, n)
  const session = await ort.InferenceSession.create(graph.bytes, { logSeverityLevel: 3 })
  const feeds: Record<string, ort.Tensor> = { [graph.inputName]: new ort.Tensor('float32', x, [n, ...model.sampleShape]) }
  for (const spec of model.layout.specs) feeds[spec.name] = new ort.Tensor('float32', params.subarray(spec.offset, spec.offset + spec.size), [...spec.shape])
  const out = await session.run(feeds)
  await session.release()
  return out[graph.logitsName].data as Float32Array
}

describe('forward ONNX export', () => {
  for (const name of ['mlp', 'lenet5']) {
    it(`${name}: the exported file takes any batch size and computes the inference graph's logits`, async () => {
      const model = createModel(name)
      const params = model.initParameters(11)
      const exported = exportForwardOnnx(model, params)
      const session = await ort.InferenceSession.create(exported.bytes, { logSeverityLevel: 3 })
      // the only input is the batch: the parameters are initializers
      expect(session.inputNames).toEqual([exported.inputName])
      expect(session.outputNames).toEqual(['logits'])
      expect(exported.outputName).toBe('logits')
      for (const n of [1, 5, 64]) {
        const x = batchOf(model, n, n)
        const out = await session.run({ [exported.inputName]: new ort.Tensor('float32', x, [n, ...model.sampleShape]) })
        const logits = out[exported.outputName]
        expect(logits.dims).toEqual([n, model.numClasses])
        const reference = await referenceLogits(model, params, x, n)
        const data = logits.data as Float32Array
        let maxDiff = 0
        for (let i = 0; i < data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(data[i] - reference[i]))
        expect(maxDiff).toBeLessThan(1e-5)
      }
      await session.release()
    })
  }

  it('the file records how its inputs are normalised (metadata_props and doc_string); without it, neither', () => {
    const model = createModel('mlp')
    const params = model.initParameters(5)
    const decoded = onnx.ModelProto.decode(exportForwardOnnx(model, params, { mean: [0.1307], std: [0.3081] }).bytes)
    const props = Object.fromEntries(decoded.metadataProps.map((p) => [p.key, p.value]))
    expect(JSON.parse(props[INPUT_NORMALIZATION_KEY])).toEqual({ mean: [0.1307], std: [0.3081] })
    expect(decoded.docString).toBe('p2pmld mlp; inputs normalised per channel as (v - mean) / std, v the pixel intensity in [0, 1]: mean [0.1307], std [0.3081]')
    const bare = onnx.ModelProto.decode(exportForwardOnnx(model, params).bytes)
    expect(bare.metadataProps).toEqual([])
    expect(bare.docString).toBe('')
  })

  it('an exported file loads back as a model whose initial parameters are the exported ones', async () => {
    const model = createModel('lenet5')
    const params = model.initParameters(3)
    const reloaded = await loadOnnxModel(exportForwardOnnx(model, params).bytes)
    expect(reloaded.layout.totalSize).toBe(model.layout.totalSize)
    expect(reloaded.numClasses).toBe(10)
    expect(reloaded.sampleShape).toEqual([1, 28, 28])
    // same values, laid out by name
    const again = reloaded.initParameters(0)
    for (const spec of model.layout.specs) {
      const other = reloaded.layout.specs.find((s) => s.name === spec.name)
      expect(other, spec.name).toBeDefined()
      expect(Array.from(again.subarray(other!.offset, other!.offset + other!.size))).toEqual(Array.from(params.subarray(spec.offset, spec.offset + spec.size)))
    }
  })

  it('an exported model with Dropout loads back with only its parameters as parameters, and trains (mobilenet_v3_small)', async () => {
    for (const name of ['mobilenet_v3_small']) {
      const model = createModel(name)
      const reloaded = await loadOnnxModel(exportForwardOnnx(model, model.initParameters(3)).bytes)
      // the Dropout ratios (scalar initializers in the file) are settings, not parameters: the
      // training graph refused them ('the ratio must be a constant float scalar')
      expect(reloaded.layout.totalSize, name).toBe(model.layout.totalSize)
      expect(onnx.ModelProto.decode(trainingGraphBytes(reloaded, 2)).graph!.node!.some((n) => n.opType === 'Mul'), name).toBe(true)
    }
  })

  it('refuses parameters of the wrong size, naming the model', () => {
    const model = createModel('mlp')
    expect(() => exportForwardOnnx(model, new Float32Array(10))).toThrow(/model 'mlp' has \d+ parameters, got 10/)
  })
})
