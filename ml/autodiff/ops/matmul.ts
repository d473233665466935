import { ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/** 2-D MatMul (what Linear layers export to); dA = dY B^T, dB = A^T dY. */
export const matmul: OpDefinition = {
  type: 'MatMul',
  inferShapes(node, [a, b]) {
    if (a.length !== 2 || b.length !== 2) throw new ShapeError(`MatMul node '${node.name}': only 2-D operands are supported`)
    return [[a[0], b[1]]]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad }) {
    if (dy === undefined) return []
    const [a, b] = node.inputs
    const t = (ta: number, tb: number) => ({ transA: { kind: 'int', value: ta }, transB: { kind: 'int', value: tb } }) as const
    return [
      needsGrad(0) ? emit.op('Gemm', [dy, b], t(0, 1)) : undefined,
      needsGrad(1) ? emit.op('Gemm', [a, dy], t(1, 0)) : undefined
    ]
  }
}
