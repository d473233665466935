import { ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

/** Broadcast to a constant shape; dX = dY summed back over the broadcast axes. */
export const expand: OpDefinition = {
  type: 'Expand',
  inferShapes(node, [x], ctx) {
    const target = ctx.constant(node.inputs[1])
    if (target === undefined || !(target.data instanceof BigInt64Array)) throw new ShapeError(`Expand node '${node.name}': the shape must be a constant int64 tensor`)
    return [broadcastShapes(x, Array.from(target.data, Number), `Expand node '${node.name}'`)]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    if (dy === undefined) return []
    return [unbroadcast(emit, dy, shape(node.outputs[0]), shape(node.inputs[0])), undefined]
  }
}
