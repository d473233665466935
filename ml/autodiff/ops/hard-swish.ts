import { unaryOp } from './unary.js'

/**
 * Y = X relu6(X + 3) / 6 (MobileNetV3); dX = dY * (0 for X < -3, 1 for X > 3, X/3 + 1/2 between),
 * PyTorch's hardswish_backward.
 */
export const hardSwish = unaryOp('HardSwish', (emit, x) => {
  const middle = emit.op('Add', [emit.op('Mul', [x, emit.scalar('third', 1 / 3)]), emit.scalar('half', 0.5)])
  const upper = emit.op('Where', [emit.op('Greater', [x, emit.scalar('three', 3)]), emit.scalar('one', 1), middle])
  return emit.op('Where', [emit.op('Less', [x, emit.scalar('minus_three', -3)]), emit.scalar('zero', 0), upper])
})
