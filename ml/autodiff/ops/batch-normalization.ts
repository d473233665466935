import { attrFloat, ShapeError, type IrNode, type Shape } from '../ir.js'
import type { BackwardContext, OpDefinition } from '../op-definition.js'

/**
 * BatchNormalization (Ioffe & Szegedy 2015) over NC... inputs, per channel C.
 *
 * Training graph: batch statistics, as PyTorch's train() mode. The running mean and variance
 * (inputs 3 and 4) are buffers of the flat parameter vector; instead of a gradient, their
 * gradient slots carry this batch's mean and unbiased variance, which peers aggregate like
 * gradients and the optimizer folds in as running = (1 - m) running + m stat.
 * Inference graph (validation, export): the running statistics, as ONNX's BatchNormalization.
 *
 * Backward in training mode (xh = normalised x, M elements per channel):
 *   dB = sum dY, dscale = sum dY xh, dX = scale / sqrt(var + eps) (dY - dB/M - xh dscale/M).
 */
export const batchNormalization: OpDefinition = {
  type: 'BatchNormalization',
  inferShapes(node, [x, scale, bias, mean, variance]) {
    if (x.length < 2) throw new ShapeError(`BatchNormalization node '${node.name}': the input needs a channel axis, got [${x.join(', ')}]`)
    for (const [label, s] of [['scale', scale], ['B', bias], ['mean', mean], ['var', variance]] as const) {
      if (s === undefined || s.length !== 1 || s[0] !== x[1]) {
        throw new ShapeError(`BatchNormalization node '${node.name}': ${label} must have shape [${x[1]}], got [${s?.join(', ') ?? 'missing'}]`)
      }
    }
    if (node.outputs.length > 1 && node.outputs.slice(1).some((o) => o !== '')) {
      throw new ShapeError(`BatchNormalization node '${node.name}': running statistics as outputs (training-mode export) are not supported; export in eval mode`)
    }
    return [x]
  },
  emitForward(node, emit, shape, ctx): Record<string, string> {
    const [x, scale, bias, mean, variance] = node.inputs
    const eps = attrFloat(node, 'epsilon', 1e-5)
    if (!ctx.training) {
      emit.node('BatchNormalization', [x, scale, bias, mean, variance], { epsilon: { kind: 'float', value: eps } }, [node.outputs[0]])
      return {}
    }
    const xs = shape(x)
    const axes = reducedAxes(xs)
    const count = xs.reduce((a, b) => a * b, 1) / xs[1]
    const axesAttr = { axes: { kind: 'ints', value: axes }, keepdims: { kind: 'int', value: 1 } } as const
    const batchMean = emit.op('ReduceMean', [x], axesAttr)
    const centred = emit.op('Sub', [x, batchMean])
    const batchVar = emit.op('ReduceMean', [emit.op('Mul', [centred, centred])], axesAttr)
    const inv = emit.op('Reciprocal', [emit.op('Sqrt', [emit.op('Add', [batchVar, emit.scalar('eps', eps)])])])
    const normalised = emit.op('Mul', [centred, inv])
    const channelShape = emit.int64s('channel_shape', channelDims(xs))
    emit.node('Add', [emit.op('Mul', [normalised, emit.op('Reshape', [scale, channelShape])]), emit.op('Reshape', [bias, channelShape])], {}, [node.outputs[0]])
    const flat = emit.int64s('flat', [xs[1]])
    return {
      normalised,
      inv,
      meanStat: emit.op('Reshape', [batchMean, flat]),
      // the running variance is updated with the unbiased batch variance, as PyTorch does
      varStat: emit.op('Reshape', [emit.op('Mul', [batchVar, emit.scalar('unbias', count > 1 ? count / (count - 1) : 1)]), flat])
    }
  },
  backward(ctx) {
    const { emit, node, outputGrads: [dy], shape, saved } = ctx
    if (dy === undefined) return []
    const [x, scale] = node.inputs
    const xs = shape(x)
    const channelShape = emit.int64s('channel_shape', channelDims(xs))
    const axes = emit.int64s('axes', reducedAxes(xs))
    const sum = (t: string): string => emit.op('ReduceSum', [t, axes], { keepdims: { kind: 'int', value: 0 } })
    const scaleR = emit.op('Reshape', [scale, channelShape])
    if (saved.normalised === undefined) return inferenceBackward(ctx, scaleR, channelShape, sum)
    const dBias = sum(dy)
    const dScale = sum(emit.op('Mul', [dy, saved.normalised]))
    const count = xs.reduce((a, b) => a * b, 1) / xs[1]
    const invCount = emit.scalar('inv_count', 1 / count)
    const meanDy = emit.op('Mul', [emit.op('Reshape', [dBias, channelShape]), invCount])
    const meanDyXh = emit.op('Mul', [emit.op('Reshape', [dScale, channelShape]), invCount])
    const inner = emit.op('Sub', [emit.op('Sub', [dy, meanDy]), emit.op('Mul', [saved.normalised, meanDyXh])])
    const dx = emit.op('Mul', [inner, emit.op('Mul', [saved.inv, scaleR])])
    return [ctx.needsGrad(0) ? dx : undefined, dScale, dBias, saved.meanStat, saved.varStat]
  }
}

function inferenceBackward(ctx: BackwardContext, scaleR: string, channelShape: string, sum: (t: string) => string): Array<string | undefined> {
  const { emit, node, outputGrads: [dy] } = ctx
  const [x, , , mean, variance] = node.inputs
  const dyy = dy as string
  const inv = emit.op('Reshape', [emit.op('Reciprocal', [emit.op('Sqrt', [emit.op('Add', [variance, emit.scalar('eps', attrFloat(node, 'epsilon', 1e-5))])])]), channelShape])
  const normalised = emit.op('Mul', [emit.op('Sub', [x, emit.op('Reshape', [mean, channelShape])]), inv])
  return [
    ctx.needsGrad(0) ? emit.op('Mul', [dyy, emit.op('Mul', [inv, scaleR])]) : undefined,
    sum(emit.op('Mul', [dyy, normalised])),
    sum(dyy)
  ]
}

function reducedAxes(xs: Shape): number[] {
  return xs.map((_, i) => i).filter((i) => i !== 1)
}

function channelDims(xs: Shape): number[] {
  return xs.map((d, i) => (i === 1 ? d : 1))
}

/** The running-statistics inputs of a BatchNormalization node: these are buffers, not trained. */
export function batchNormBuffers(node: IrNode): string[] {
  return node.op === 'BatchNormalization' ? [node.inputs[3], node.inputs[4]] : []
}
