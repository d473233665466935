import type { OpDefinition } from '../op-definition.js'

/** Y = sqrt(X); dX = dY / (2 Y). */
export const sqrt: OpDefinition = {
  type: 'Sqrt',
  inferShapes(_node, [x]) {
    return [x]
  },
  backward({ emit, node, outputGrads: [dy] }) {
    if (dy === undefined) return []
    return [emit.op('Div', [emit.op('Mul', [dy, emit.scalar('half', 0.5)]), node.outputs[0]])]
  }
}
