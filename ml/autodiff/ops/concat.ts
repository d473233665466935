import { attrInt, ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/** Joins tensors along one axis (SqueezeNet's Fire modules); backward splits dY at the same sizes. */
export const concat: OpDefinition = {
  type: 'Concat',
  inferShapes(node, shapes) {
    const rank = shapes[0].length
    const raw = attrInt(node, 'axis', 0)
    const axis = raw < 0 ? raw + rank : raw
    if (axis < 0 || axis >= rank) throw new ShapeError(`Concat node '${node.name}': axis ${raw} is outside rank ${rank}`)
    shapes.forEach((s, k) => {
      if (s.length !== rank || s.some((d, i) => i !== axis && d !== shapes[0][i])) {
        throw new ShapeError(`Concat node '${node.name}': input ${k} [${s.join(', ')}] does not match input 0 [${shapes[0].join(', ')}] outside axis ${axis}`)
      }
    })
    const out = [...shapes[0]]
    out[axis] = shapes.reduce((sum, s) => sum + s[axis], 0)
    return [out]
  },
  backward({ emit, node, outputGrads: [dy], needsGrad, shape }) {
    if (dy === undefined) return []
    const rank = shape(node.outputs[0]).length
    const raw = attrInt(node, 'axis', 0)
    const axis = raw < 0 ? raw + rank : raw
    const sizes = node.inputs.map((name) => shape(name)[axis])
    if (node.inputs.length === 1) return [dy]
    const parts = emit.node('Split', [dy, emit.int64s('split', sizes)], { axis: { kind: 'int', value: axis } }, sizes.length)
    return parts.map((p, i) => (needsGrad(i) ? p : undefined))
  }
}
