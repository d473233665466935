import type { OpDefinition } from '../op-definition.js'
import { fusesRelu } from './conv.js'
import { reluMask, reluMaskedInMaxPool } from './pool.js'

/** dX = dY * (Y > 0); before a disjoint MaxPool that pool applies the mask (see reluMaskedInMaxPool). */
export const relu: OpDefinition = {
  type: 'Relu',
  inferShapes(_node, [x]) {
    return [x]
  },
  emitForward(node, emit, shape, ctx) {
    // an NCHWc Conv before it already applied it (its fused activation)
    const producer = ctx.producer(node.inputs[0])
    emit.node(producer !== undefined && fusesRelu(producer, shape, ctx) ? 'Identity' : 'Relu', node.inputs, {}, node.outputs)
    return {}
  },
  backward(ctx) {
    const { emit, node, outputGrads: [dy], shape } = ctx
    if (dy === undefined) return []
    if (reluMaskedInMaxPool(node, ctx)) return [dy]
    return [reluMask(emit, dy, node.outputs[0], shape(node.outputs[0]))]
  }
}
