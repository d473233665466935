import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

export const add: OpDefinition = {
  type: 'Add',
  inferShapes(node, [a, b]) {
    return [broadcastShapes(a, b, `Add node '${node.name}'`)]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const out = shape(node.outputs[0])
    return node.inputs.map((input, i) => needsGrad(i) ? unbroadcast(emit, dy, out, shape(input)) : undefined)
  }
}
