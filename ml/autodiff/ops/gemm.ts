import { attrFloat, attrInt, ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

/** Y = op(A) op(B) + C, with op = transpose when transA/transB; alpha = beta = 1. */
export const gemm: OpDefinition = {
  type: 'Gemm',
  inferShapes(node, [a, b, c]) {
    if (a.length !== 2 || b.length !== 2) throw new ShapeError(`Gemm node '${node.name}': A and B must be 2-D, got [${a.join(', ')}] and [${b.join(', ')}]`)
    if (attrFloat(node, 'alpha', 1) !== 1 || attrFloat(node, 'beta', 1) !== 1) {
      throw new ShapeError(`Gemm node '${node.name}': only alpha = beta = 1 is supported`)
    }
    const m = attrInt(node, 'transA', 0) === 1 ? a[1] : a[0]
    const n = attrInt(node, 'transB', 0) === 1 ? b[0] : b[1]
    const ka = attrInt(node, 'transA', 0) === 1 ? a[0] : a[1]
    const kb = attrInt(node, 'transB', 0) === 1 ? b[1] : b[0]
    if (ka !== kb) {
      throw new ShapeError(`Gemm node '${node.name}': inner dimensions differ: A gives ${ka} features, B expects ${kb} (A [${a.join(', ')}], B [${b.join(', ')}])`)
    }
    if (c !== undefined) broadcastShapes(c, [m, n], `Gemm node '${node.name}' bias C`)
    return [[m, n]]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const [a, b, c] = node.inputs
    const transA = attrInt(node, 'transA', 0) === 1
    const transB = attrInt(node, 'transB', 0) === 1
    const flags = (ta: boolean, tb: boolean) => ({ transA: { kind: 'int', value: ta ? 1 : 0 }, transB: { kind: 'int', value: tb ? 1 : 0 } }) as const
    let da: string | undefined
    let db: string | undefined
    if (needsGrad(0)) {
      // dA = dY op(B)^T, transposed back when A was transposed
      da = transA ? emit.op('Gemm', [b, dy], flags(transB, true)) : emit.op('Gemm', [dy, b], flags(false, !transB))
    }
    if (needsGrad(1)) {
      db = transB ? emit.op('Gemm', [dy, a], flags(true, transA)) : emit.op('Gemm', [a, dy], flags(!transA, false))
    }
    const dc = c !== undefined && needsGrad(2) ? unbroadcast(emit, dy, shape(node.outputs[0]), shape(c)) : undefined
    return [da, db, dc]
  }
}
