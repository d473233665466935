import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

export const add: OpDefinition = {
  type: 'Add',
  inferShapes(_node, [a, b]) {
    return [broadcastShapes(a, b)]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const out = shape(node.outputs[0])
    return node.inputs.map((input, i) => needsGrad(i) ? unbroadcast(emit, dy, out, shape(input)) : undefined)
  }
}
