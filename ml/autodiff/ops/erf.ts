import type { OpDefinition } from '../op-definition.js'

/** Y = erf(X) (exact GELU exports as 0.5 x (1 + erf(x / sqrt 2))); dX = dY 2/sqrt(pi) e^(-X^2). */
export const erf: OpDefinition = {
  type: 'Erf',
  inferShapes(_node, [x]) {
    return [x]
  },
  backward({ emit, node, outputGrads: [dy] }) {
    if (dy === undefined) return []
    const x = node.inputs[0]
    const gauss = emit.op('Exp', [emit.op('Neg', [emit.op('Mul', [x, x])])])
    return [emit.op('Mul', [dy, emit.op('Mul', [gauss, emit.scalar('two_over_sqrt_pi', 2 / Math.sqrt(Math.PI))])])]
  }
}
