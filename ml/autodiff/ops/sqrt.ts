import { unaryOp } from './unary.js'

/** Y = sqrt(X); dX = dY / (2 Y). */
export const sqrt = unaryOp('Sqrt', (emit, _x, y) => emit.op('Div', [emit.scalar('half', 0.5), y]))
