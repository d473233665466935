import { unaryOp } from './unary.js'

/** Y = tanh(X); dX = dY (1 - Y^2). */
export const tanh = unaryOp('Tanh', (emit, _x, y) => emit.op('Sub', [emit.scalar('one', 1), emit.op('Mul', [y, y])]))
