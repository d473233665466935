import { unaryOp } from './unary.js'

/** Y = erf(X) (exact GELU exports as 0.5 x (1 + erf(x / sqrt 2))); dX = dY 2/sqrt(pi) e^(-X^2). */
export const erf = unaryOp('Erf', (emit, x) => emit.op('Mul', [
  emit.op('Exp', [emit.op('Neg', [emit.op('Mul', [x, x])])]),
  emit.scalar('two_over_sqrt_pi', 2 / Math.sqrt(Math.PI))
]))
