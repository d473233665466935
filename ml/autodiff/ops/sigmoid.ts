import { unaryOp } from './unary.js'

/** Y = 1 / (1 + e^-X); dX = dY Y (1 - Y). */
export const sigmoid = unaryOp('Sigmoid', (emit, _x, y) => emit.op('Mul', [y, emit.op('Sub', [emit.scalar('one', 1), y])]))
