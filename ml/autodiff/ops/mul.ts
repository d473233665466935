import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

/** Y = A * B with broadcasting (squeeze-and-excitation scales); dA = dY B, dB = dY A, summed back. */
export const mul: OpDefinition = {
  type: 'Mul',
  inferShapes(node, [a, b]) {
    return [broadcastShapes(a, b, `Mul node '${node.name}'`)]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const out = shape(node.outputs[0])
    const [a, b] = node.inputs
    return [
      needsGrad(0) ? unbroadcast(emit, emit.op('Mul', [dy, b]), out, shape(a)) : undefined,
      needsGrad(1) ? unbroadcast(emit, emit.op('Mul', [dy, a]), out, shape(b)) : undefined
    ]
  }
}
