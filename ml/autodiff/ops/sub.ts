import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

/** Y = A - B with broadcasting; dA = dY, dB = -dY, each summed back to its operand's shape. */
export const sub: OpDefinition = {
  type: 'Sub',
  inferShapes(node, [a, b]) {
    return [broadcastShapes(a, b, `Sub node '${node.name}'`)]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const out = shape(node.outputs[0])
    const [a, b] = node.inputs
    return [
      needsGrad(0) ? unbroadcast(emit, dy, out, shape(a)) : undefined,
      needsGrad(1) ? unbroadcast(emit, emit.op('Neg', [dy]), out, shape(b)) : undefined
    ]
  }
}
