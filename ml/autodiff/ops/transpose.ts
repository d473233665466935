import { attrInts, ints, ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/** Axis permutation (default: reversed); dX = Transpose(dY, inverse permutation). */
export const transpose: OpDefinition = {
  type: 'Transpose',
  inferShapes(node, [x]) {
    const perm = attrInts(node, 'perm', x.map((_, i) => x.length - 1 - i))
    if (perm.length !== x.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
      throw new ShapeError(`Transpose node '${node.name}': perm [${perm.join(', ')}] is not a permutation of a rank-${x.length} input`)
    }
    return [perm.map((p) => x[p])]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    if (dy === undefined) return []
    const rank = shape(node.inputs[0]).length
    const perm = attrInts(node, 'perm', Array.from({ length: rank }, (_, i) => rank - 1 - i))
    const inverse = new Array<number>(rank)
    perm.forEach((p, i) => { inverse[p] = i })
    return [emit.op('Transpose', [dy], { perm: ints(inverse) })]
  }
}
