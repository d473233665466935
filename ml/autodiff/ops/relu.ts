import type { OpDefinition } from '../op-definition.js'
import { fusesRelu } from './conv.js'
import { reluMask, reluMaskedInMaxPool } from './pool.js'

/**
 * dX = dY * (Y > 0); before a disjoint MaxPool that pool applies the mask (see reluMaskedInMaxPool).
 * An input with a batch-last twin (batch-last.ts: a gemm conv's output) is rectified as that twin,
 * and the backward masks dY's twin where dY has one: elementwise, the layout does not matter.
 */
export const relu: OpDefinition = {
  type: 'Relu',
  inferShapes(_node, [x]) {
    return [x]
  },
  emitForward(node, emit, shape, ctx) {
    // an NCHWc Conv before it already applied it (its fused activation)
    const producer = ctx.producer(node.inputs[0])
    const twin = ctx.batchLast.get(node.inputs[0])
    if (twin !== undefined) ctx.batchLast.fromTwin(emit, emit.op('Relu', [twin]), node.outputs[0])
    else emit.node(producer !== undefined && fusesRelu(producer, shape, ctx) ? 'Identity' : 'Relu', node.inputs, {}, node.outputs)
    return {}
  },
  backward(ctx) {
    const { emit, node, outputGrads: [dy], shape, batchLast } = ctx
    if (dy === undefined) return []
    if (reluMaskedInMaxPool(node, ctx)) return [dy]
    const y = node.outputs[0]
    const [dyTwin, yTwin] = [batchLast.get(dy), batchLast.get(y)]
    if (dyTwin !== undefined && yTwin !== undefined) {
      const ys = shape(y)
      return [batchLast.fromTwin(emit, reluMask(emit, dyTwin, yTwin, [ys[1], ys[2], ys[3], ys[0]]))]
    }
    return [reluMask(emit, dy, y, shape(y))]
  }
}
