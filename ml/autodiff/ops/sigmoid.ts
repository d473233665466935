import type { OpDefinition } from '../op-definition.js'

/** Y = 1 / (1 + e^-X); dX = dY Y (1 - Y). */
export const sigmoid: OpDefinition = {
  type: 'Sigmoid',
  inferShapes(_node, [x]) {
    return [x]
  },
  backward({ emit, node, outputGrads: [dy] }) {
    if (dy === undefined) return []
    const y = node.outputs[0]
    return [emit.op('Mul', [dy, emit.op('Mul', [y, emit.op('Sub', [emit.scalar('one', 1), y])])])]
  }
}
