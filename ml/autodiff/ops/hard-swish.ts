import type { OpDefinition } from '../op-definition.js'

/**
 * Y = X relu6(X + 3) / 6 (MobileNetV3); dX = dY * (0 for X < -3, 1 for X > 3, X/3 + 1/2 between),
 * PyTorch's hardswish_backward.
 */
export const hardSwish: OpDefinition = {
  type: 'HardSwish',
  inferShapes(_node, [x]) {
    return [x]
  },
  backward({ emit, node, outputGrads: [dy] }) {
    if (dy === undefined) return []
    const x = node.inputs[0]
    const middle = emit.op('Add', [emit.op('Mul', [x, emit.scalar('third', 1 / 3)]), emit.scalar('half', 0.5)])
    const upper = emit.op('Where', [emit.op('Greater', [x, emit.scalar('three', 3)]), emit.scalar('one', 1), middle])
    const local = emit.op('Where', [emit.op('Less', [x, emit.scalar('minus_three', -3)]), emit.scalar('zero', 0), upper])
    return [emit.op('Mul', [dy, local])]
  }
}
