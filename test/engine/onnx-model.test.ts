import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { specializeGraph, UnsupportedOpError } from '../../ml/autodiff/training-graph.js'
import { createRng } from '../../ml/core/rng.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { UnknownModelError } from '../../ml/models/model-definition.js'
import { createModel } from '../../ml/models/zoo.js'
import { InvalidOnnxModelError, loadOnnxModel, OnnxModelNotFoundError } from '../../ml/onnx/load-onnx-model.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'
import { readDigits } from './mnist-digits.js'
import { referenceGradient, relativeError } from './reference.js'

const FLOAT = onnx.TensorProto.DataType.FLOAT
const INT64 = onnx.TensorProto.DataType.INT64
const A = onnx.AttributeProto.AttributeType

const ints = (name: string, values: number[]) => ({ name, type: A.INTS, ints: values })

function randomValues(dims: number[], seed: number): Float32Array {
  const rng = createRng(seed)
  const bound = 1 / Math.sqrt(dims.length > 1 ? dims.slice(1).reduce((a, b) => a * b, 1) : dims[0])
  return Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (rng.nextFloat() * 2 - 1) * bound)
}

function randomTensor(name: string, dims: number[], seed: number, style: 'raw' | 'floatData') {
  const values = randomValues(dims, seed)
  return style === 'raw'
    ? { name, dims, dataType: FLOAT, rawData: new Uint8Array(values.buffer) }
    : { name, dims, dataType: FLOAT, floatData: Array.from(values) }
}

/**
 * What torch.onnx.export writes for a small CNN with a dynamic batch axis: Conv (stride 2, pad 1)
 * -> activation -> MaxPool 3/2 (overlapping) -> Reshape(Constant [-1, 144]) -> MatMul -> Add.
 */
function forwardModelBytes(activation: 'Relu' | 'Tanh' | 'Elu'): Uint8Array {
  const batchDim = { dimParam: 'batch' }
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'pytorch',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'tiny-cnn',
      input: [
        { name: 'x', type: { tensorType: { elemType: FLOAT, shape: { dim: [batchDim, { dimValue: 1 }, { dimValue: 28 }, { dimValue: 28 }] } } } },
        // older exporters list initializers among the inputs too
        { name: 'conv.weight', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 4 }, { dimValue: 1 }, { dimValue: 3 }, { dimValue: 3 }] } } } }
      ],
      output: [{ name: 'logits', type: { tensorType: { elemType: FLOAT, shape: { dim: [batchDim, { dimValue: 10 }] } } } }],
      initializer: [
        randomTensor('conv.weight', [4, 1, 3, 3], 1, 'raw'),
        randomTensor('conv.bias', [4], 2, 'floatData'),
        randomTensor('fc.weight', [144, 10], 3, 'raw'),
        randomTensor('fc.bias', [10], 4, 'raw')
      ],
      node: [
        { name: '/conv/Conv', opType: 'Conv', input: ['x', 'conv.weight', 'conv.bias'], output: ['c'], attribute: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1]), ints('dilations', [1, 1]), { name: 'group', type: A.INT, i: 1 }] },
        { name: '/act/' + activation, opType: activation, input: ['c'], output: ['a'] },
        { name: '', opType: 'MaxPool', input: ['a'], output: ['p'], attribute: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [0, 0, 0, 0])] },
        { name: '/Constant', opType: 'Constant', input: [], output: ['shape'], attribute: [{ name: 'value', type: A.TENSOR, t: { dims: [2], dataType: INT64, int64Data: [-1, 144] } }] },
        { name: '/Reshape', opType: 'Reshape', input: ['p', 'shape'], output: ['flat'] },
        { name: '/fc/MatMul', opType: 'MatMul', input: ['flat', 'fc.weight'], output: ['mm'] },
        { name: '/fc/Add', opType: 'Add', input: ['mm', 'fc.bias'], output: ['logits'] }
      ]
    }
  })
  return onnx.ModelProto.encode(model).finish()
}

/** Grouped and depthwise convolutions: Conv 1->4, Conv 4->8 in 2 groups (stride 2, pad 1), depthwise 8 (x2 multiplier). */
function groupedModelBytes(): Uint8Array {
  const dim = (d: number[]) => ({ dim: d.map((v) => ({ dimValue: v })) })
  const conv = (name: string, input: string, output: string, group: number, stride: number, pad: number) => ({
    name, opType: 'Conv', input: [input, `${name}.weight`, `${name}.bias`], output: [output],
    attribute: [ints('kernel_shape', [3, 3]), ints('strides', [stride, stride]), ints('pads', [pad, pad, pad, pad]), { name: 'group', type: A.INT, i: group }]
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'grouped',
      input: [{ name: 'x', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 1 }, { dimValue: 28 }, { dimValue: 28 }] } } } }],
      output: [{ name: 'logits', type: { tensorType: { elemType: FLOAT, shape: dim([1, 10]) } } }],
      initializer: [
        randomTensor('c1.weight', [4, 1, 3, 3], 11, 'raw'), randomTensor('c1.bias', [4], 12, 'raw'),
        randomTensor('c2.weight', [8, 2, 3, 3], 13, 'raw'), randomTensor('c2.bias', [8], 14, 'raw'),
        randomTensor('c3.weight', [16, 1, 3, 3], 15, 'raw'), randomTensor('c3.bias', [16], 16, 'raw'),
        randomTensor('fc.weight', [10, 16], 17, 'raw'), randomTensor('fc.bias', [10], 18, 'raw')
      ],
      node: [
        conv('c1', 'x', 'a1', 1, 1, 0),
        { name: 'r1', opType: 'Relu', input: ['a1'], output: ['b1'] },
        conv('c2', 'b1', 'a2', 2, 2, 1),
        { name: 'r2', opType: 'Relu', input: ['a2'], output: ['b2'] },
        conv('c3', 'b2', 'a3', 8, 1, 1),
        { name: 'gap', opType: 'GlobalAveragePool', input: ['a3'], output: ['g'] },
        { name: 'flat', opType: 'Flatten', input: ['g'], output: ['f'], attribute: [{ name: 'axis', type: A.INT, i: 1 }] },
        { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: ['logits'], attribute: [{ name: 'transB', type: A.INT, i: 1 }] }
      ]
    }
  })
  return onnx.ModelProto.encode(model).finish()
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'p2pmld-engine-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('loadOnnxModel', () => {
  it('trains a forward graph read from a file: float initializers become parameters, gradients match the reference', async () => {
    const path = join(dir, 'tiny-cnn.onnx')
    await writeFile(path, forwardModelBytes('Relu'))
    const model = await loadOnnxModel(path)

    expect(model.name).toBe('tiny-cnn')
    expect(model.sampleShape).toEqual([1, 28, 28])
    expect(model.numClasses).toBe(10)
    expect(model.layout.specs.map((s) => [s.name, s.shape])).toEqual([
      ['conv.weight', [4, 1, 3, 3]], ['conv.bias', [4]], ['fc.weight', [144, 10]], ['fc.bias', [10]]
    ])
    const params = model.initParameters(0)
    const fc = model.layout.specs[2]
    expect(params.subarray(fc.offset, fc.offset + fc.size)).toEqual(randomValues([144, 10], 3))
    const convBias = model.layout.specs[1]
    expect(params.subarray(convBias.offset, convBias.offset + 4)).toEqual(randomValues([4], 2))

    const { inputs, labels } = readDigits(12)
    const computer = createOnnxGradientComputer(model)
    try {
      const result = await computer.computeGradient(params, { size: 12, sampleShape: model.sampleShape, inputs, labels })
      const ref = referenceGradient(model.forward, model.layout, params, inputs, labels)
      expect(Math.abs(result.loss - ref.loss)).toBeLessThan(1e-5)
      for (const spec of model.layout.specs) {
        const err = relativeError(result.gradient.subarray(spec.offset, spec.offset + spec.size), ref.gradient.subarray(spec.offset, spec.offset + spec.size))
        expect(err, spec.name).toBeLessThan(2e-4)
      }
    } finally {
      await computer.close()
    }
  })

  it('trains grouped and depthwise convolutions (and global average pooling) exactly', async () => {
    const model = await loadOnnxModel(groupedModelBytes())
    const params = model.initParameters(0)
    const { inputs, labels } = readDigits(6, 20)
    const computer = createOnnxGradientComputer(model)
    try {
      const result = await computer.computeGradient(params, { size: 6, sampleShape: model.sampleShape, inputs, labels })
      const ref = referenceGradient(model.forward, model.layout, params, inputs, labels)
      expect(Math.abs(result.loss - ref.loss)).toBeLessThan(1e-5)
      for (const spec of model.layout.specs) {
        const err = relativeError(result.gradient.subarray(spec.offset, spec.offset + spec.size), ref.gradient.subarray(spec.offset, spec.offset + spec.size))
        expect(err, spec.name).toBeLessThan(2e-4)
      }
    } finally {
      await computer.close()
    }
  })

  it('accepts the model bytes directly', async () => {
    const model = await loadOnnxModel(forwardModelBytes('Relu'))
    expect(model.layout.totalSize).toBe(4 * 9 + 4 + 1440 + 10)
  })

  it('names the first unsupported op type and its node', async () => {
    const path = join(dir, 'tanh.onnx')
    await writeFile(path, forwardModelBytes('Elu'))
    const err = await loadOnnxModel(path).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnsupportedOpError)
    expect((err as UnsupportedOpError).op).toBe('Elu')
    expect((err as UnsupportedOpError).nodeName).toBe('/act/Elu')
    expect((err as Error).message).toMatch(/'Elu'.*'\/act\/Elu'.*Conv/)
  })

  it('refuses max pooling with column-major indices (storage_order=1), naming the node', async () => {
    const model = onnx.ModelProto.decode(forwardModelBytes('Relu'))
    const pool = model.graph?.node?.find((n) => n.opType === 'MaxPool')
    if (pool === undefined) throw new Error('fixture has no MaxPool')
    pool.name = '/pool/MaxPool'
    pool.attribute = [...(pool.attribute ?? []), { name: 'storage_order', type: A.INT, i: 1 }]
    await expect(loadOnnxModel(onnx.ModelProto.encode(model).finish())).rejects.toThrow(/MaxPool node '\/pool\/MaxPool': storage_order=1 \(column-major indices\) is not supported/)
  })

  it('says when weights live in an external data file', async () => {
    const model = onnx.ModelProto.decode(forwardModelBytes('Relu'))
    const weight = model.graph?.initializer?.[0]
    if (weight === undefined) throw new Error('fixture has no initializer')
    weight.rawData = new Uint8Array()
    weight.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL
    weight.externalData = [{ key: 'location', value: 'weights.bin' }]
    await expect(loadOnnxModel(onnx.ModelProto.encode(model).finish())).rejects.toThrow(/'conv\.weight' keeps its data in an external file/)
  })

  it('says when the file does not exist', async () => {
    const path = join(dir, 'missing.onnx')
    await expect(loadOnnxModel(path)).rejects.toThrow(OnnxModelNotFoundError)
    await expect(loadOnnxModel(path)).rejects.toThrow(/missing\.onnx' does not exist/)
    // a relative path says where it looked: a daemon reads a submitted job's path from its own directory
    await expect(loadOnnxModel('models/nowhere.onnx')).rejects.toThrow(`ONNX model file 'models/nowhere.onnx' does not exist (looked for ${join(process.cwd(), 'models', 'nowhere.onnx')}: a relative path is read from the working directory of the process that loads it): check the path, or use a zoo model name`)
  })

  it('says when the bytes are not an ONNX model', async () => {
    const text = join(dir, 'notes.onnx')
    await writeFile(text, 'this is a text file, not a model\n')
    await expect(loadOnnxModel(text)).rejects.toThrow(InvalidOnnxModelError)
    const rng = createRng(7)
    const noise = Uint8Array.from({ length: 4096 }, () => rng.nextInt(256))
    await expect(loadOnnxModel(noise)).rejects.toThrow(InvalidOnnxModelError)
    await expect(loadOnnxModel(new Uint8Array())).rejects.toThrow(/not a usable ONNX model/)
  })
})

describe('a real torch.onnx.export file (fixtures/tiny-cnn.onnx, see export-tiny-cnn.py)', () => {
  it('folds the exporter\'s constant subgraphs, trains, and matches the float64 reference', async () => {
    const model = await loadOnnxModel(fileURLToPath(new URL('./fixtures/tiny-cnn.onnx', import.meta.url)))
    expect(model.sampleShape).toEqual([1, 28, 28])
    expect(model.numClasses).toBe(10)
    expect(model.layout.specs.map((s) => s.name)).toEqual(['c1.weight', 'c1.bias', 'c2.weight', 'c2.bias', 'fc.weight', 'fc.bias'])
    // only ops that touch the batch or the parameters are left for the autodiff
    expect(model.forward.nodes.map((n) => n.op)).toEqual(['Conv', 'Relu', 'MaxPool', 'Pad', 'Conv', 'Relu', 'Pad', 'AveragePool', 'Flatten', 'Gemm'])

    const params = model.initParameters(0)
    const { inputs, labels } = readDigits(10, 50)
    const computer = createOnnxGradientComputer(model)
    try {
      const result = await computer.computeGradient(params, { size: 10, sampleShape: model.sampleShape, inputs, labels })
      const ref = referenceGradient(model.forward, model.layout, params, inputs, labels)
      expect(Math.abs(result.loss - ref.loss)).toBeLessThan(1e-5)
      for (const spec of model.layout.specs) {
        const err = relativeError(result.gradient.subarray(spec.offset, spec.offset + spec.size), ref.gradient.subarray(spec.offset, spec.offset + spec.size))
        expect(err, spec.name).toBeLessThan(2e-4)
      }
    } finally {
      await computer.close()
    }
  })

  it('folds x.view(x.size(0), -1) (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) per batch size', async () => {
    const model = await loadOnnxModel(fileURLToPath(new URL('./fixtures/tiny-cnn-view.onnx', import.meta.url)))
    expect(model.forward.nodes.map((n) => n.op)).toContain('Shape')
    const params = model.initParameters(0)
    const computer = createOnnxGradientComputer(model)
    try {
      for (const size of [10, 3]) {
        const specialized = specializeGraph(model.forward, model.layout, size).graph
        expect(specialized.nodes.map((n) => n.op)).toEqual(['Conv', 'Relu', 'MaxPool', 'Pad', 'Conv', 'Relu', 'Pad', 'AveragePool', 'Reshape', 'Gemm'])
        const { inputs, labels } = readDigits(size, 60)
        const result = await computer.computeGradient(params, { size, sampleShape: model.sampleShape, inputs, labels })
        const ref = referenceGradient(specialized, model.layout, params, inputs, labels)
        expect(Math.abs(result.loss - ref.loss)).toBeLessThan(1e-5)
        for (const spec of model.layout.specs) {
          const err = relativeError(result.gradient.subarray(spec.offset, spec.offset + spec.size), ref.gradient.subarray(spec.offset, spec.offset + spec.size))
          expect(err, `batch ${size} ${spec.name}`).toBeLessThan(2e-4)
        }
      }
    } finally {
      await computer.close()
    }
  })
})

describe('createModel', () => {
  it('builds the zoo with the expected parameter counts and a deterministic seeded init', () => {
    expect(createModel('mlp').layout.totalSize).toBe(784 * 128 + 128 + 128 * 10 + 10)
    expect(createModel('mlp-large').layout.totalSize).toBe(784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10)
    expect(createModel('lenet5').layout.totalSize).toBe(156 + 2416 + 48120 + 10164 + 850)
    const lenet = createModel('lenet5')
    expect(lenet.initParameters(42)).toEqual(createModel('lenet5').initParameters(42))
    expect(lenet.initParameters(42)).not.toEqual(lenet.initParameters(43))
    // PyTorch's default init: U(+-1/sqrt(fan_in)), fan_in of conv2 = 6 * 5 * 5
    const conv2 = lenet.layout.specs.find((s) => s.name === 'conv2.weight')
    const values = lenet.initParameters(1).subarray(conv2?.offset, (conv2?.offset ?? 0) + (conv2?.size ?? 0))
    const bound = 1 / Math.sqrt(150)
    expect(Math.max(...values)).toBeLessThanOrEqual(bound)
    expect(Math.max(...values)).toBeGreaterThan(0.9 * bound)
    expect(Math.min(...values)).toBeLessThan(-0.9 * bound)
  })

  it('throws a typed error listing the known names for an unknown model', () => {
    expect(() => createModel('resnet152')).toThrow(UnknownModelError)
    expect(() => createModel('resnet152')).toThrow(/'resnet152'.*mlp.*mlp-large.*lenet5/)
  })
})
