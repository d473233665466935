import type { OpDefinition } from '../op-definition.js'

/** Y = tanh(X); dX = dY (1 - Y^2). */
export const tanh: OpDefinition = {
  type: 'Tanh',
  inferShapes(_node, [x]) {
    return [x]
  },
  backward({ emit, node, outputGrads: [dy] }) {
    if (dy === undefined) return []
    const y = node.outputs[0]
    return [emit.op('Mul', [dy, emit.op('Sub', [emit.scalar('one', 1), emit.op('Mul', [y, y])])])]
  }
}
