import { attrFloat } from '../ir.js'
import { unaryOp } from './unary.js'

/**
 * Y = clip(alpha X + beta, 0, 1) (ONNX defaults alpha 0.2, beta 0.5; PyTorch's hardsigmoid
 * exports alpha 1/6). dX = dY alpha where 0 < Y < 1, as PyTorch's backward (strict bounds).
 */
export const hardSigmoid = unaryOp('HardSigmoid', (emit, _x, y, node) => {
  const inside = emit.op('And', [emit.op('Greater', [y, emit.scalar('zero', 0)]), emit.op('Less', [y, emit.scalar('one', 1)])])
  return emit.op('Mul', [emit.op('Cast', [inside], { to: { kind: 'int', value: 1 } }), emit.scalar('alpha', attrFloat(node, 'alpha', 0.2))])
})
