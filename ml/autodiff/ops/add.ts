import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

/**
 * Elementwise sum with broadcasting. Two inputs of one shape that both have batch-last twins
 * (batch-last.ts: a resnet block's conv output and its shortcut) are added as those twins.
 */
export const add: OpDefinition = {
  type: 'Add',
  inferShapes(node, [a, b]) {
    return [broadcastShapes(a, b, `Add node '${node.name}'`)]
  },
  emitForward(node, emit, shape, ctx) {
    const [a, b] = node.inputs
    const twins = [ctx.batchLast.get(a), ctx.batchLast.get(b)]
    const same = shape(a).length === shape(b).length && shape(a).every((d, i) => d === shape(b)[i])
    if (same && twins[0] !== undefined && twins[1] !== undefined) ctx.batchLast.fromTwin(emit, emit.op('Add', twins as string[]), node.outputs[0])
    else emit.node('Add', node.inputs, node.attrs, node.outputs)
    return {}
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const out = shape(node.outputs[0])
    return node.inputs.map((input, i) => needsGrad(i) ? unbroadcast(emit, dy, out, shape(input)) : undefined)
  }
}
