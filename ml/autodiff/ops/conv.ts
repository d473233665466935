import { attrInt, attrInts, attrString, ints, ShapeError, type IrNode, type Shape } from '../ir.js'
import { emitGemmConv, gemmConv, gemmConvBackward, gemmConvInputGradient } from './conv-gemm.js'
import type { ForwardContext, OpDefinition } from '../op-definition.js'
import { emitNchwcForward, emitNchwcInputGradient, emitNchwcWeightGradient, nchwcConvolutions } from './nchwc.js'

interface ConvGeometry {
  kernel: number[]
  strides: number[]
  pads: number[]
  dilations: number[]
}

export function convGeometry(node: IrNode, kernel: readonly number[]): ConvGeometry {
  const spatial = kernel.length
  if (attrString(node, 'auto_pad', 'NOTSET') !== 'NOTSET') {
    throw new ShapeError(`${node.op} node '${node.name}': auto_pad is not supported, export with explicit pads`)
  }
  return {
    kernel: [...kernel],
    strides: [...attrInts(node, 'strides', new Array(spatial).fill(1))],
    pads: [...attrInts(node, 'pads', new Array(spatial * 2).fill(0))],
    dilations: [...attrInts(node, 'dilations', new Array(spatial).fill(1))]
  }
}

export function pooledSize(input: number, kernel: number, stride: number, padBegin: number, padEnd: number, dilation = 1): number {
  return Math.floor((input + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1
}

/**
 * 2-D convolution, grouped and depthwise too. Backward written with standard ops, exact (STACK-NOTES).
 * In the training graph a convolution on a small map runs as Gemms over the whole batch (conv-gemm.ts).
 */
export const conv: OpDefinition = {
  type: 'Conv',
  inferShapes(node, [x, w]) {
    if (x.length !== 4) throw new ShapeError(`Conv node '${node.name}': only 2-D convolution (NCHW input) is supported`)
    const group = attrInt(node, 'group', 1)
    if (x[1] % group !== 0 || w[0] % group !== 0 || w[1] * group !== x[1]) {
      throw new ShapeError(`Conv node '${node.name}': weight [${w.join(', ')}] does not fit ${x[1]} input channels in ${group} groups`)
    }
    const g = convGeometry(node, w.slice(2))
    if (g.dilations.some((d) => d !== 1)) throw new ShapeError(`Conv node '${node.name}': dilated convolution is not supported yet`)
    const h = pooledSize(x[2], g.kernel[0], g.strides[0], g.pads[0], g.pads[2])
    const wd = pooledSize(x[3], g.kernel[1], g.strides[1], g.pads[1], g.pads[3])
    return [[x[0], w[0], h, wd]]
  },
  emitForward(node, emit, shape, ctx) {
    if (ctx.training && gemmConv(node, shape(node.inputs[0]), shape(node.inputs[1]), shape(node.outputs[0]), ctx.nchwcBlock)) return emitGemmConv(node, emit, shape, ctx.batchLast)
    if (nchwcForward(node, shape, ctx)) {
      const ws = shape(node.inputs[1])
      emitNchwcForward(emit, node.inputs[0], node.inputs[1], ws, node.inputs[2], convGeometry(node, ws.slice(2)), ctx.nchwcBlock, node.outputs[0], fusesRelu(node, shape, ctx))
      return {}
    }
    emit.node('Conv', node.inputs, node.attrs, node.outputs)
    return {}
  },
  backward(ctx) {
    const { emit, node, outputGrads: [dy], needsGrad, shape, saved, nchwcBlock, intraOpThreads } = ctx
    if (dy === undefined) return []
    const [x, w, b] = node.inputs
    const xs = shape(x)
    const ws = shape(w)
    const ys = shape(node.outputs[0])
    const g = convGeometry(node, ws.slice(2))
    const group = attrInt(node, 'group', 1)
    // a gemm conv reads dY through its batch-last twin [M, H, W, N] (batch-last.ts): summed there
    const dyTwin = saved.cols === undefined ? undefined : ctx.batchLast.of(emit, dy)
    const db = b !== undefined && needsGrad(2)
      ? emit.op('ReduceSum', [dyTwin ?? dy, emit.int64s('axes', dyTwin === undefined ? [0, 2, 3] : [1, 2, 3])], { keepdims: { kind: 'int', value: 0 } })
      : undefined
    let dx: string | undefined
    let dw: string | undefined
    if (saved.cols !== undefined) {
      const dxByGemm = gemmConvInputGradient(xs, ws, ys)
      ;({ dx, dw } = gemmConvBackward(ctx, dy, needsGrad(0) ? dxByGemm : undefined, needsGrad(1)))
      if (dxByGemm !== undefined || !needsGrad(0)) return [dx, dw, db]
    }
    // dW comes out of a conv of X with dY as its kernel, over the padded input: one value per
    // kernel offset that fits, which the stride can make more than the kernel; keep the kernel's
    const fullSize = [0, 1].map((i) => xs[2 + i] + g.pads[i] + g.pads[i + 2] - (ys[2 + i] - 1) * g.strides[i])
    const cropToKernel = (full: string, axes: readonly number[]): string =>
      fullSize[0] === g.kernel[0] && fullSize[1] === g.kernel[1]
        ? full
        : emit.op('Slice', [full, emit.int64s('starts', [0, 0]), emit.int64s('ends', g.kernel), emit.int64s('axes', axes)])
    if (needsGrad(0) && nchwcConvolutions.inputGradient(group, ws[0], ws[1], g, nchwcBlock, intraOpThreads)) {
      dx = emitNchwcInputGradient(emit, dy, w, ws, g, nchwcBlock, xs[2])
    } else if (needsGrad(0)) {
      // ConvTranspose maps dY back onto X's grid; output_padding restores rows the stride dropped
      const outputPadding = [0, 1].map((i) => xs[2 + i] - ((ys[2 + i] - 1) * g.strides[i] - g.pads[i] - g.pads[i + 2] + g.kernel[i]))
      // the Conv weight [M, C/g, kh, kw] is already ConvTranspose's layout for the same groups
      dx = emit.op('ConvTranspose', [dy, w], {
        group: { kind: 'int', value: group },
        kernel_shape: ints(g.kernel),
        strides: ints(g.strides),
        pads: ints(g.pads),
        output_padding: ints(outputPadding)
      })
    }
    // a gemmConv's dW came from its saved columns above
    const dwByConv = needsGrad(1) && saved.cols === undefined
    if (dwByConv && xs[1] === 1 && group === 1) {
      // one input channel (a first layer on grey images): each sample is a group of its own,
      // dW = sum_n X[n] (*) dY[n, m], with X read as [1, N, H, W] and dY as [N*M, 1, h, w]
      // (both reshapes, no Transpose), then summed over n. 2.2 -> 1.5 ms for lenet5's first
      // conv at batch 256 here; the sum's order differs from the batch-as-channels conv's
      const n = xs[0]
      const m = ws[0]
      const perSample = emit.op('Conv', [
        emit.op('Reshape', [x, emit.int64s('shape', [1, n, xs[2], xs[3]])]),
        emit.op('Reshape', [dy, emit.int64s('shape', [n * m, 1, ys[2], ys[3]])])
      ], { pads: ints(g.pads), dilations: ints(g.strides), group: { kind: 'int', value: n } })
      const full = cropToKernel(emit.op('Reshape', [perSample, emit.int64s('shape', [n, m, 1, fullSize[0], fullSize[1]])]), [3, 4])
      dw = emit.op('ReduceSum', [full, emit.int64s('axes', [0])], { keepdims: { kind: 'int', value: 0 } })
    } else if (dwByConv && nchwcConvolutions.weightGradient(group, xs[1], xs[0], g, nchwcBlock)) {
      dw = emit.op('Transpose', [cropToKernel(emitNchwcWeightGradient(emit, x, xs, dy, ys, g, nchwcBlock), [2, 3])], { perm: ints([1, 0, 2, 3]) })
    } else if (dwByConv) {
      // dW[m,i] = sum_n X[n, group(m)*Cg + i] (*) dY[n,m]: a convolution whose channels are the
      // batch (grouped like the forward) and whose batch is i, with the stride as dilation
      const perm = ints([1, 0, 2, 3])
      const cg = xs[1] / group
      const xt = group === 1
        ? emit.op('Transpose', [x], { perm })
        : emit.op('Reshape', [
          emit.op('Transpose', [emit.op('Reshape', [x, emit.int64s('shape', [xs[0], group, cg, xs[2], xs[3]])])], { perm: ints([2, 1, 0, 3, 4]) }),
          emit.int64s('shape', [cg, group * xs[0], xs[2], xs[3]])
        ])
      const dyt = emit.op('Transpose', [dy], { perm })
      const full = cropToKernel(emit.op('Conv', [xt, dyt], { pads: ints(g.pads), dilations: ints(g.strides), group: { kind: 'int', value: group } }), [2, 3])
      dw = emit.op('Transpose', [full], { perm })
    }
    return [dx, dw, db]
  }
}

/** Whether a training graph's Conv node runs forward through NCHWc (ops/nchwc.ts) rather than ONNX Conv or Gemms. */
function nchwcForward(node: IrNode, shape: (name: string) => Shape, ctx: ForwardContext): boolean {
  const ws = shape(node.inputs[1])
  return ctx.training && !gemmConv(node, shape(node.inputs[0]), ws, shape(node.outputs[0]), ctx.nchwcBlock) &&
    nchwcConvolutions.forward(attrInt(node, 'group', 1), ws[1], ctx.nchwcBlock)
}

/**
 * Whether an NCHWc Conv node applies the ReLU that alone reads its output (that Relu then emits an
 * Identity: relu.ts). Exact: the kernel's activation is the same max(0, y). Nothing else reads
 * the pre-activation values (the Relu's backward reads its own output).
 */
export function fusesRelu(node: IrNode, shape: (name: string) => Shape, ctx: ForwardContext): boolean {
  if (node.op !== 'Conv' || !nchwcForward(node, shape, ctx)) return false
  const readers = ctx.consumers(node.outputs[0])
  return readers.length === 1 && readers[0].op === 'Relu'
}

export function spatialOf(shape: Shape): number[] {
  return shape.slice(2) as number[]
}
