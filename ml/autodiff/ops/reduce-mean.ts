import { attrInt, product, type IrNode, type Shape } from '../ir.js'
import type { OpDefinition, ShapeContext } from '../op-definition.js'
import { nodeAxes } from './axes.js'

function reducedAxes(node: IrNode, x: Shape, constant: ShapeContext['constant']): number[] {
  return nodeAxes(node, 1, constant, x.length) ?? x.map((_, i) => i)
}

/** Mean over axes (attribute up to opset 17, input from 18); dX = dY / count, expanded back. */
export const reduceMean: OpDefinition = {
  type: 'ReduceMean',
  inferShapes(node, [x], ctx) {
    const axes = reducedAxes(node, x, (n) => ctx.constant(n))
    const keep = attrInt(node, 'keepdims', 1) === 1
    return [keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i))]
  },
  emitForward(node, emit, shape, ctx) {
    // opset 17 (what the emitter writes) takes axes as an attribute
    const axes = reducedAxes(node, shape(node.inputs[0]), (n) => ctx.constant(n))
    emit.node('ReduceMean', [node.inputs[0]], { axes: { kind: 'ints', value: axes }, keepdims: { kind: 'int', value: attrInt(node, 'keepdims', 1) } }, node.outputs)
    return {}
  },
  backward({ emit, node, outputGrads: [dy], shape, constant }) {
    if (dy === undefined) return []
    const x = shape(node.inputs[0])
    const axes = reducedAxes(node, x, constant)
    const kept = emit.op('Reshape', [dy, emit.int64s('shape', x.map((d, i) => (axes.includes(i) ? 1 : d)))])
    const spread = emit.op('Expand', [kept, emit.int64s('shape', [...x])])
    return [emit.op('Mul', [spread, emit.scalar('inv_count', 1 / product(axes.map((a) => x[a])))])]
  }
}
