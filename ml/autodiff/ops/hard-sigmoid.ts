import { attrFloat } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/**
 * Y = clip(alpha X + beta, 0, 1) (ONNX defaults alpha 0.2, beta 0.5; PyTorch's hardsigmoid
 * exports alpha 1/6). dX = dY alpha where 0 < Y < 1, as PyTorch's backward (strict bounds).
 */
export const hardSigmoid: OpDefinition = {
  type: 'HardSigmoid',
  inferShapes(_node, [x]) {
    return [x]
  },
  backward({ emit, node, outputGrads: [dy] }) {
    if (dy === undefined) return []
    const y = node.outputs[0]
    const inside = emit.op('And', [emit.op('Greater', [y, emit.scalar('zero', 0)]), emit.op('Less', [y, emit.scalar('one', 1)])])
    const mask = emit.op('Cast', [inside], { to: { kind: 'int', value: 1 } })
    return [emit.op('Mul', [emit.op('Mul', [dy, mask]), emit.scalar('alpha', attrFloat(node, 'alpha', 0.2))])]
  }
}
