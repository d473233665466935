import { ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

/**
 * Y = A ^ E for a constant exponent E (LayerNorm's decomposition squares with Pow(x, 2));
 * dA = dY E A^(E-1). A trainable exponent is refused at load.
 */
export const pow: OpDefinition = {
  type: 'Pow',
  inferShapes(node, [a, e], ctx) {
    if (ctx.constant(node.inputs[1]) === undefined) throw new ShapeError(`Pow node '${node.name}': only a constant exponent is supported`)
    return [broadcastShapes(a, e, `Pow node '${node.name}'`)]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const [a, e] = node.inputs
    if (!needsGrad(0)) return []
    const em1 = emit.op('Sub', [e, emit.scalar('one', 1)])
    const local = emit.op('Mul', [e, emit.op('Pow', [a, em1])])
    return [unbroadcast(emit, emit.op('Mul', [dy, local]), shape(node.outputs[0]), shape(a)), undefined]
  }
}
