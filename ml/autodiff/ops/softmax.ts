import { attrInt, ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/** Softmax over one axis (opset 13 semantics); dX = Y (dY - sum(dY Y, axis)). */
export const softmax: OpDefinition = {
  type: 'Softmax',
  inferShapes(node, [x]) {
    const axis = attrInt(node, 'axis', -1)
    if (axis < -x.length || axis >= x.length) throw new ShapeError(`Softmax node '${node.name}': axis ${axis} is outside a rank-${x.length} input`)
    return [x]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    if (dy === undefined) return []
    const y = node.outputs[0]
    const rank = shape(y).length
    const axis = attrInt(node, 'axis', -1)
    const dot = emit.op('ReduceSum', [emit.op('Mul', [dy, y]), emit.int64s('axes', [axis < 0 ? axis + rank : axis])], { keepdims: { kind: 'int', value: 1 } })
    return [emit.op('Mul', [y, emit.op('Sub', [dy, dot])])]
  }
}
