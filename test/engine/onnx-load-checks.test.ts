/**
 * Load-time checks of ONNX imports: a bad model fails at load naming the node (never at step 0
 * inside ONNX Runtime), a fixed-batch export is recognised, recurrent layers are named, and
 * Identity-chained initializers become separate parameters while directly shared ones stay tied.
 */
import { describe, expect, it } from 'vitest'
import { ShapeError } from '../../ml/autodiff/ir.js'
import { UnsupportedOpError } from '../../ml/autodiff/training-graph.js'
import { createRng } from '../../ml/core/rng.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { FixedBatchSizeError, loadOnnxModel } from '../../ml/onnx/load-onnx-model.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'

const FLOAT = onnx.TensorProto.DataType.FLOAT
const INT64 = onnx.TensorProto.DataType.INT64
const A = onnx.AttributeProto.AttributeType
const ints = (name: string, values: number[]) => ({ name, type: A.INTS, ints: values })
const int = (name: string, i: number) => ({ name, type: A.INT, i })

function tensor(name: string, dims: number[], seed: number, fill?: number) {
  const rng = createRng(seed)
  const values = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => fill ?? (rng.nextFloat() * 2 - 1) * 0.1)
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(values.buffer) }
}
const int64s = (name: string, values: number[]) => ({ name, dims: [values.length], dataType: INT64, int64Data: values })

interface NodeSpec { name: string, opType: string, input: string[], output: string[], attribute?: unknown[] }

function modelBytes(nodes: NodeSpec[], initializer: unknown[], options: { batchDim?: number, sample?: number[] } = {}): Uint8Array {
  const sample = options.sample ?? [1, 26, 26]
  const batch = options.batchDim === undefined ? { dimParam: 'batch' } : { dimValue: options.batchDim }
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'checks',
      input: [{ name: 'x', type: { tensorType: { elemType: FLOAT, shape: { dim: [batch, ...sample.map((d) => ({ dimValue: d }))] } } } }],
      output: [{ name: 'logits', type: { tensorType: { elemType: FLOAT, shape: { dim: [batch, { dimValue: 10 }] } } } }],
      initializer: initializer as never[],
      node: nodes as never[]
    }
  })).finish()
}

/** Pool 2x2 stride 2 dilation 2 on 26x26 (-> 12x12), flatten, Gemm against a [10, features] weight. */
function dilatedPoolModel(features: number): Uint8Array {
  return modelBytes([
    { name: 'pool', opType: 'MaxPool', input: ['x'], output: ['p'], attribute: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2]), ints('dilations', [2, 2])] },
    { name: 'flat', opType: 'Flatten', input: ['p'], output: ['f'] },
    { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: ['logits'], attribute: [int('transB', 1)] }
  ], [tensor('fc.weight', [10, features], 1), tensor('fc.bias', [10], 2)])
}

function reshapeModel(target: number[], options: { batchDim?: number, allowzero?: number } = {}): Uint8Array {
  return modelBytes([
    { name: 'reshape', opType: 'Reshape', input: ['x', 'shape'], output: ['f'], attribute: options.allowzero === undefined ? [] : [int('allowzero', options.allowzero)] },
    { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: ['logits'], attribute: [int('transB', 1)] }
  ], [int64s('shape', target), tensor('fc.weight', [10, 676], 1), tensor('fc.bias', [10], 2)], { batchDim: options.batchDim })
}

const loadError = async (bytes: Uint8Array): Promise<Error> => await loadOnnxModel(bytes).then(() => { throw new Error('loaded') }, (e: unknown) => e as Error)

describe('shape inference checks what it infers, at load', () => {
  it('pool dilations: 26x26 with a 2x2 stride-2 dilation-2 window is 12x12, so 144 features fit and 169 (13x13, the dilation ignored) are refused naming the Gemm', async () => {
    const model = await loadOnnxModel(dilatedPoolModel(144))
    const computer = createOnnxGradientComputer(model)
    const rng = createRng(3)
    const inputs = Float32Array.from({ length: 2 * 676 }, () => rng.nextFloat())
    const result = await computer.computeGradient(model.initParameters(0), { size: 2, sampleShape: [1, 26, 26], inputs, labels: Int32Array.of(1, 2) })
    await computer.close()
    expect(Number.isFinite(result.loss)).toBe(true)
    const err = await loadError(dilatedPoolModel(169))
    expect(err).toBeInstanceOf(ShapeError)
    expect(err.message).toMatch(/Gemm node 'fc': inner dimensions differ: A gives 144 features, B expects 169/)
  })

  it('MaxPool ceil_mode: 14x14 with 3x3 stride 2 is 6x6 (floor) or 7x7 (ceil), as SqueezeNet needs', async () => {
    const pool = (ceil: number, features: number) => modelBytes([
      { name: 'pool', opType: 'MaxPool', input: ['x'], output: ['p'], attribute: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), int('ceil_mode', ceil)] },
      { name: 'flat', opType: 'Flatten', input: ['p'], output: ['f'] },
      { name: 'fc', opType: 'Gemm', input: ['f', 'w', 'b'], output: ['logits'], attribute: [int('transB', 1)] }
    ], [tensor('w', [10, features], 1), tensor('b', [10], 2)], { sample: [1, 14, 14] })
    await expect(loadOnnxModel(pool(0, 36))).resolves.toBeDefined()
    await expect(loadOnnxModel(pool(1, 49))).resolves.toBeDefined()
    expect((await loadError(pool(1, 36))).message).toMatch(/Gemm node 'fc'.*49 features, B expects 36/)
  })

  it('Reshape: element counts must match, one -1 that divides, 0 copies, allowzero', async () => {
    await expect(loadOnnxModel(reshapeModel([-1, 676]))).resolves.toBeDefined()
    await expect(loadOnnxModel(reshapeModel([0, -1]))).resolves.toBeDefined()
    expect((await loadError(reshapeModel([-1, -1]))).message).toMatch(/Reshape node 'reshape'.*at most one dimension may be -1/)
    expect((await loadError(reshapeModel([-1, 675]))).message).toMatch(/Reshape node 'reshape'.*676 elements cannot be split/)
    expect((await loadError(reshapeModel([0, 600]))).message).toMatch(/Reshape node 'reshape'.*the target holds 600 elements, the input 676/)
    // allowzero = 1: a 0 is a real zero-size dim, not a copy
    expect((await loadError(reshapeModel([0, -1], { allowzero: 1 }))).message).toMatch(/Reshape node 'reshape'/)
  })

  it('a model exported for a fixed batch size is recognised and named with the fix', async () => {
    // torch.onnx.export without dynamic_axes: the batch (4) is baked into the input and the Reshape
    const err = await loadError(reshapeModel([4, 676], { batchDim: 4 }))
    expect(err).toBeInstanceOf(FixedBatchSizeError)
    expect(err.message).toMatch(/exported for batch size 4: re-export with dynamic_axes/)
    // a symbolic input but a batch baked into the Reshape: found from the Reshape target
    expect(await loadError(reshapeModel([8, 676]))).toBeInstanceOf(FixedBatchSizeError)
    // a fixed input dim with batch-agnostic ops loads
    await expect(loadOnnxModel(reshapeModel([-1, 676], { batchDim: 4 }))).resolves.toBeDefined()
  })

  it('broadcasting and MatMul inner dimensions are checked, naming the node', async () => {
    const add = modelBytes([
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'mm', opType: 'MatMul', input: ['f', 'w'], output: ['m'] },
      { name: 'bias', opType: 'Add', input: ['m', 'b'], output: ['logits'] }
    ], [tensor('w', [676, 10], 1), tensor('b', [7], 2)])
    expect((await loadError(add)).message).toMatch(/Add node 'bias': cannot broadcast \[1, 10\] with \[7\]/)
    const mm = modelBytes([
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'mm', opType: 'MatMul', input: ['f', 'w'], output: ['logits'] }
    ], [tensor('w', [670, 10], 1)])
    expect((await loadError(mm)).message).toMatch(/MatMul node 'mm': inner dimensions differ: \[1, 676\] x \[670, 10\]/)
  })

  it('refuses LSTM and GRU naming the layer, not the helper ops the exporter put before it', async () => {
    for (const op of ['LSTM', 'GRU']) {
      const bytes = modelBytes([
        { name: 'shape', opType: 'Shape', input: ['x'], output: ['s'] },
        { name: 'zeros', opType: 'ConstantOfShape', input: ['s'], output: ['h0'] },
        { name: `/rnn/${op}`, opType: op, input: ['x', 'w', 'r', '', '', 'h0'], output: ['y'], attribute: [int('hidden_size', 4)] },
        { name: 'flat', opType: 'Flatten', input: ['y'], output: ['logits'] }
      ], [tensor('w', [1, 16, 26], 1), tensor('r', [1, 16, 4], 2)], { sample: [26, 26] })
      const err = await loadError(bytes)
      expect(err).toBeInstanceOf(UnsupportedOpError)
      expect((err as UnsupportedOpError).op).toBe(op)
      expect(err.message).toMatch(new RegExp(`recurrent layer '${op}' in node '/rnn/${op}' is not supported`))
    }
  })

  it('initializers de-duplicated through Identity nodes become separate parameters; a weight read directly twice stays tied', async () => {
    const bytes = modelBytes([
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'fc1', opType: 'Gemm', input: ['f', 'w1', 'zero'], output: ['h1'], attribute: [int('transB', 1)] },
      { name: 'id', opType: 'Identity', input: ['zero'], output: ['fc2.bias'] },
      { name: 'fc2', opType: 'Gemm', input: ['h1', 'tied', 'fc2.bias'], output: ['h2'], attribute: [int('transB', 1)] },
      { name: 'fc3', opType: 'Gemm', input: ['h2', 'tied'], output: ['h3'], attribute: [int('transB', 1)] },
      { name: 'fc4', opType: 'Gemm', input: ['h3', 'w4'], output: ['logits'], attribute: [int('transB', 1)] }
    ], [tensor('w1', [10, 676], 1), tensor('zero', [10], 0, 0), tensor('tied', [10, 10], 3), tensor('w4', [10, 10], 4)])
    const model = await loadOnnxModel(bytes)
    expect(model.layout.specs.map((s) => s.name)).toEqual(['w1', 'zero', 'fc2.bias', 'tied', 'w4'])
    const computer = createOnnxGradientComputer(model)
    const rng = createRng(5)
    const inputs = Float32Array.from({ length: 3 * 676 }, () => rng.nextFloat())
    const { gradient } = await computer.computeGradient(model.initParameters(0), { size: 3, sampleShape: [1, 26, 26], inputs, labels: Int32Array.of(1, 2, 3) })
    await computer.close()
    const [, b1, b2] = model.layout.specs
    const g1 = gradient.subarray(b1.offset, b1.offset + b1.size)
    const g2 = gradient.subarray(b2.offset, b2.offset + b2.size)
    // the two biases sit at different depths: their gradients differ once they are separate
    expect(g1.some((v, i) => Math.abs(v - g2[i]) > 1e-6)).toBe(true)
  })

  it('a tensor of another type says what export made it and the fix (a training-mode export\'s bool flag, a float64 model)', async () => {
    const withConstant = (constant: unknown): Uint8Array => modelBytes([
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: ['logits'], attribute: [int('transB', 1)] }
    ], [tensor('fc.weight', [10, 676], 1), tensor('fc.bias', [10], 2), constant])
    const T = onnx.TensorProto.DataType
    await expect(loadOnnxModel(withConstant({ name: '', dims: [], dataType: T.BOOL, int32Data: [1] })))
      .rejects.toThrow(/an unnamed constant has data type BOOL; only float32 and int64 are supported\): an export with training=TrainingMode.TRAINING carries bool training flags: export in eval mode/)
    await expect(loadOnnxModel(withConstant({ name: 'scale', dims: [1], dataType: T.DOUBLE, doubleData: [2] })))
      .rejects.toThrow(/tensor 'scale' has data type DOUBLE.*call model.float\(\) before exporting/)
  })

  it('a model whose output comes out of a Softmax loads with a warning naming the node and the fix; one ending in logits has none', async () => {
    const ending = (last: NodeSpec[]): Uint8Array => modelBytes([
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: [last.length === 0 ? 'logits' : 'h'], attribute: [int('transB', 1)] },
      ...last
    ], [tensor('fc.weight', [10, 676], 1), tensor('fc.bias', [10], 2)])
    const softmax = await loadOnnxModel(ending([{ name: '/Softmax', opType: 'Softmax', input: ['h'], output: ['logits'], attribute: [int('axis', 1)] }]))
    expect(softmax.warnings).toEqual([expect.stringMatching(/^the output of .* comes out of a Softmax \(node '\/Softmax'\): training applies softmax cross-entropy to the output as logits.*export the model without its last Softmax$/)])
    expect((await loadOnnxModel(ending([]))).warnings).toBeUndefined()
  })

  it('a model\'s own Max is refused (PyTorch splits a tie\'s gradient; the pool split\'s internal max sends it to the first input) and the internal op is not listed', async () => {
    const bytes = modelBytes([
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: ['h'], attribute: [int('transB', 1)] },
      { name: '/Max', opType: 'Max', input: ['h', 'h'], output: ['logits'] }
    ], [tensor('fc.weight', [10, 676], 1), tensor('fc.bias', [10], 2)])
    const error = await loadOnnxModel(bytes).then(() => undefined, (e: unknown) => e as Error)
    expect(error?.message).toMatch(/^unsupported op 'Max' in node '\/Max': the autodiff supports /)
    expect(error?.message).not.toContain('PoolWindowMax')
  })

  it('LayerNormalization (one op from opset 17 on) says to export at a lower opset, where it comes as ops the autodiff supports', async () => {
    const bytes = modelBytes([
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: ['h'], attribute: [int('transB', 1)] },
      { name: '/norm/LayerNormalization', opType: 'LayerNormalization', input: ['h', 'ln.weight', 'ln.bias'], output: ['logits'] }
    ], [tensor('fc.weight', [10, 676], 1), tensor('fc.bias', [10], 2), tensor('ln.weight', [10], 3), tensor('ln.bias', [10], 4)])
    const error = await loadOnnxModel(bytes).then(() => undefined, (e: unknown) => e as Error)
    expect(error?.message).toBe("unsupported op 'LayerNormalization' in node '/norm/LayerNormalization': opset 17 and later export it as one op; export with opset_version=16 or lower (torch.onnx.export(..., opset_version=13)), which writes it as ops the autodiff supports")
  })

  it('an int32 constant read by an op the autodiff lacks names that op (torch.cumsum exports CumSum with an int32 axis)', async () => {
    const T = onnx.TensorProto.DataType
    const cumsum = (axisAs: 'initializer' | 'Constant'): Uint8Array => modelBytes([
      ...(axisAs === 'Constant' ? [{ name: 'axis_node', opType: 'Constant', input: [], output: ['axis'], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: { dims: [], dataType: T.INT32, int32Data: [1] } }] }] : []),
      { name: 'flat', opType: 'Flatten', input: ['x'], output: ['f'] },
      { name: 'fc', opType: 'Gemm', input: ['f', 'fc.weight', 'fc.bias'], output: ['h'], attribute: [int('transB', 1)] },
      { name: '/CumSum', opType: 'CumSum', input: ['h', 'axis'], output: ['logits'] }
    ], [tensor('fc.weight', [10, 676], 1), tensor('fc.bias', [10], 2), ...(axisAs === 'initializer' ? [{ name: 'axis', dims: [], dataType: T.INT32, int32Data: [1] }] : [])])
    for (const axisAs of ['initializer', 'Constant'] as const) {
      await expect(loadOnnxModel(cumsum(axisAs)), axisAs).rejects.toThrow(/^unsupported op 'CumSum' in node '\/CumSum': the autodiff supports /)
    }
  })
})
