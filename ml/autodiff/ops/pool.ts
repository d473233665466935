import { attrInt, attrInts, int, ints, product, ShapeError, type IrNode, type Shape } from '../ir.js'
import type { BackwardContext, OpDefinition } from '../op-definition.js'
import { convGeometry } from './conv.js'

/**
 * Output size of one pooled axis (ONNX MaxPool): floor or, with ceil_mode, ceil of
 * (in + pads - dilation*(k-1) - 1) / stride, + 1; with ceil_mode a last window that would start
 * in the end padding is dropped, as PyTorch and ONNX Runtime do.
 */
export function pooledAxis(input: number, kernel: number, stride: number, padBegin: number, padEnd: number, dilation: number, ceil: boolean): number {
  const span = input + padBegin + padEnd - dilation * (kernel - 1) - 1
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1
  if (ceil && (out - 1) * stride >= input + padBegin) out--
  return out
}

function poolShape(node: IrNode, x: Shape): Shape {
  if (x.length !== 4) throw new ShapeError(`${node.op} node '${node.name}': only 2-D pooling (NCHW input) is supported`)
  const g = convGeometry(node, attrInts(node, 'kernel_shape', []))
  if (g.kernel.length !== 2) throw new ShapeError(`${node.op} node '${node.name}': kernel_shape must have 2 values`)
  const ceil = attrInt(node, 'ceil_mode', 0) !== 0
  const out = [0, 1].map((i) => pooledAxis(x[2 + i], g.kernel[i], g.strides[i], g.pads[i], g.pads[i + 2], g.dilations[i], ceil))
  if (out.some((d) => d < 1)) {
    throw new ShapeError(`${node.op} node '${node.name}': a ${g.kernel.join('x')} window (dilations ${g.dilations.join(',')}) does not fit the ${x[2]}x${x[3]} input`)
  }
  return [x[0], x[1], out[0], out[1]]
}

/**
 * Whether no two of a MaxPool's windows share an input, so MaxUnpool can route its gradient:
 * along each axis the stride spans the window (stride >= kernel, no dilation, pads or ceil_mode),
 * or there is one window only (squeezenet1_1's last pool on 32x32 inputs, 3x3 at stride 2 over a
 * 3x3 map: at batch 64 its scatter-add of 16,384 values took 0.13-0.30 ms, MaxUnpool 0.06-0.07,
 * the same gradient bit for bit). `x`, `y`: the pool's input and output shapes. MaxUnpool gets
 * the pool's kernel, strides and pads, whose implied size (out - 1) stride + kernel - pads must
 * not pass the input's (ONNX Runtime refuses an output_shape under it): a single window that
 * reaches past the map keeps the scatter.
 */
function disjointWindows(node: IrNode, x: Shape, y: Shape): boolean {
  const g = convGeometry(node, attrInts(node, 'kernel_shape', []))
  const ceil = attrInt(node, 'ceil_mode', 0) !== 0
  return g.kernel.every((k, i) => {
    const pads = g.pads[i] + g.pads[i + 2]
    if (g.dilations[i] !== 1) return false
    return y[2 + i] === 1 ? k - pads <= x[2 + i] : g.strides[i] >= k && pads === 0 && !ceil
  })
}

/**
 * Whether this Relu's output is read only by one MaxPool (Conv, Relu, MaxPool: lenet5, vgg11,
 * squeezenet, resnet's stem). Then the pool's backward applies the ReLU's mask to dY on the pooled
 * grid, before scattering it, and the Relu's backward passes its dY through: an input gets dY only
 * from windows whose argmax it is, and there ReLU(x)[p] = Y, so (Y > 0) is the ReLU's
 * (ReLU(x) > 0) there, the same for every such window: the same gradient, with the mask's Greater,
 * Cast and Mul on a tensor about stride-area times smaller. Disjoint windows: bit for bit.
 * Overlapping ones (a sum of dY over several windows): the same values; only a masked sum's zero
 * may lose its sign (-0 becomes 0).
 */
export function reluMaskedInMaxPool(relu: IrNode, ctx: Pick<BackwardContext, 'consumers'>): boolean {
  if (relu.op !== 'Relu') return false
  const readers = ctx.consumers(relu.outputs[0])
  return readers.length === 1 && readers[0].op === 'MaxPool' && readers[0].outputs.length === 1
}

/**
 * dY * (Y > 0): a ReLU's backward mask, as Mul with a cast mask (1.4-2.5x faster than Where here).
 * `shape`: Y's. ONNX Runtime's Greater against a scalar runs ~10x slower on a shape ending in 1
 * ([64, 512, 1, 1]: 0.25-0.58 ms, the same values as [32768]: 0.05 ms), so such a Y is compared flat.
 */
export function reluMask(emit: BackwardContext['emit'], dy: string, y: string, shape: Shape): string {
  const flat = shape.length > 1 && shape[shape.length - 1] === 1
  const compared = flat ? emit.op('Reshape', [y, emit.int64s('flat', [product(shape)])]) : y
  const mask = emit.op('Cast', [emit.op('Greater', [compared, emit.scalar('zero', 0)])], { to: { kind: 'int', value: 1 } })
  return emit.op('Mul', [dy, flat ? emit.op('Reshape', [mask, emit.int64s('shape', [...shape])]) : mask])
}

/**
 * MaxPool backward routes dY to the argmax positions (the Indices output, flat over NCHW).
 * Where windows do not overlap each input receives at most one dY, so MaxUnpool's assignment is
 * exact, and much cheaper in ORT than the general path: ScatterElements(reduction=add) into
 * zeros, which overlapping windows need (there one input can be the max of several windows).
 */
export const maxPool: OpDefinition = {
  type: 'MaxPool',
  inferShapes(node, [x]) {
    // the backward reads the Indices output as row-major offsets
    if (attrInt(node, 'storage_order', 0) !== 0) throw new ShapeError(`MaxPool node '${node.name}': storage_order=1 (column-major indices) is not supported`)
    return [poolShape(node, x)]
  },
  emitForward(node, emit) {
    const indices = emit.fresh(`${node.outputs[0]}_indices`)
    emit.node('MaxPool', node.inputs, node.attrs, [node.outputs[0], indices])
    return { indices }
  },
  backward(ctx) {
    const { emit, node, outputGrads: [dy], saved, shape } = ctx
    if (dy === undefined) return []
    const xs = shape(node.inputs[0])
    const g = convGeometry(node, attrInts(node, 'kernel_shape', []))
    const relu = ctx.producer(node.inputs[0])
    const routed = relu !== undefined && reluMaskedInMaxPool(relu, ctx) ? reluMask(emit, dy, node.outputs[0], shape(node.outputs[0])) : dy
    if (disjointWindows(node, xs, shape(node.outputs[0]))) {
      // output_shape given: with an input size the stride does not divide, the default is smaller
      return [emit.op('MaxUnpool', [routed, saved.indices, emit.int64s('shape', [...xs])], {
        kernel_shape: ints(g.kernel),
        strides: ints(g.strides),
        pads: ints(g.pads)
      })]
    }
    const flat = emit.int64s('flat', [-1])
    const zeros = emit.op('ConstantOfShape', [emit.int64s('size', [product(xs)])], {
      value: { kind: 'tensor', value: { dims: [1], data: Float32Array.of(0) } }
    })
    const scattered = emit.op('ScatterElements', [zeros, emit.op('Reshape', [saved.indices, flat]), emit.op('Reshape', [routed, flat])], {
      axis: { kind: 'int', value: 0 },
      reduction: { kind: 'string', value: 'add' }
    })
    return [emit.op('Reshape', [scattered, emit.int64s('shape', [...xs])])]
  }
}

/** Average pooling (count_include_pad = 0 only matters with pads: then padding is refused). */
export const averagePool: OpDefinition = {
  type: 'AveragePool',
  inferShapes(node, [x]) {
    const pads = attrInts(node, 'pads', [0, 0, 0, 0])
    if (pads.some((p) => p !== 0) && attrInt(node, 'count_include_pad', 0) === 0) {
      throw new ShapeError(`AveragePool node '${node.name}': padding without count_include_pad is not supported`)
    }
    if (attrInts(node, 'dilations', [1, 1]).some((d) => d !== 1)) throw new ShapeError(`AveragePool node '${node.name}': dilations are not supported`)
    const out = poolShape(node, x)
    if (attrInt(node, 'ceil_mode', 0) !== 0) {
      // a partial last window averages fewer values: only allowed where ceil and floor agree
      const floor = poolShape({ ...node, attrs: { ...node.attrs, ceil_mode: int(0) } }, x)
      if (floor[2] !== out[2] || floor[3] !== out[3]) throw new ShapeError(`AveragePool node '${node.name}': ceil_mode=1 with a partial last window is not supported; pad the input or use ceil_mode=0`)
    }
    return [poolShape(node, x)]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    if (dy === undefined) return []
    const xs = shape(node.inputs[0])
    const ys = shape(node.outputs[0])
    const g = convGeometry(node, attrInts(node, 'kernel_shape', []))
    const channels = xs[1]
    // a depthwise ConvTranspose with weights 1/(kh*kw) spreads each dY back over its window
    const weight = emit.constant('avgpool_w', {
      dims: [channels, 1, g.kernel[0], g.kernel[1]],
      data: new Float32Array(channels * g.kernel[0] * g.kernel[1]).fill(1 / (g.kernel[0] * g.kernel[1]))
    })
    const outputPadding = [0, 1].map((i) => xs[2 + i] - ((ys[2 + i] - 1) * g.strides[i] - g.pads[i] - g.pads[i + 2] + g.kernel[i]))
    return [emit.op('ConvTranspose', [dy, weight], {
      kernel_shape: ints(g.kernel),
      strides: ints(g.strides),
      pads: ints(g.pads),
      output_padding: ints(outputPadding),
      group: { kind: 'int', value: channels }
    })]
  }
}

export const globalAveragePool: OpDefinition = {
  type: 'GlobalAveragePool',
  inferShapes(node, [x]) {
    if (x.length !== 4) throw new ShapeError(`GlobalAveragePool node '${node.name}': NCHW input expected`)
    return [[x[0], x[1], 1, 1]]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    if (dy === undefined) return []
    const xs = shape(node.inputs[0])
    const spread = emit.op('Expand', [dy, emit.int64s('shape', [...xs])])
    return [emit.op('Mul', [spread, emit.scalar('inv_area', 1 / (xs[2] * xs[3]))])]
  }
}
