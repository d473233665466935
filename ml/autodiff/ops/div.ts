import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

/** Y = A / B with broadcasting; dA = dY / B, dB = -dY Y / B, summed back to each operand's shape. */
export const div: OpDefinition = {
  type: 'Div',
  inferShapes(node, [a, b]) {
    return [broadcastShapes(a, b, `Div node '${node.name}'`)]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const out = shape(node.outputs[0])
    const [a, b] = node.inputs
    return [
      needsGrad(0) ? unbroadcast(emit, emit.op('Div', [dy, b]), out, shape(a)) : undefined,
      needsGrad(1) ? unbroadcast(emit, emit.op('Neg', [emit.op('Div', [emit.op('Mul', [dy, node.outputs[0]]), b])]), out, shape(b)) : undefined
    ]
  }
}
