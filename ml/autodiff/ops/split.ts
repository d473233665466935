import { attrInt, attrInts, ShapeError, type IrNode, type Shape } from '../ir.js'
import type { OpDefinition, ShapeContext } from '../op-definition.js'

function splitSizes(node: IrNode, x: Shape, axis: number, constant: ShapeContext['constant']): number[] {
  const input = node.inputs[1]
  let sizes: number[] | undefined
  if (input !== undefined && input !== '') {
    const c = constant(input)
    if (c === undefined || !(c.data instanceof BigInt64Array)) throw new ShapeError(`Split node '${node.name}': split sizes must be a constant int64 tensor`)
    sizes = Array.from(c.data, Number)
  } else if (node.attrs.split !== undefined) {
    sizes = [...attrInts(node, 'split', [])]
  }
  const n = node.outputs.length
  if (sizes === undefined) {
    if (x[axis] % n !== 0) throw new ShapeError(`Split node '${node.name}': axis ${axis} of size ${x[axis]} does not split into ${n} equal parts`)
    sizes = new Array<number>(n).fill(x[axis] / n)
  }
  if (sizes.length !== n || sizes.reduce((a, b) => a + b, 0) !== x[axis]) {
    throw new ShapeError(`Split node '${node.name}': sizes [${sizes.join(', ')}] do not split axis ${axis} of size ${x[axis]} into ${n} outputs`)
  }
  return sizes
}

const axisOf = (node: IrNode, rank: number): number => {
  const raw = attrInt(node, 'axis', 0)
  return raw < 0 ? raw + rank : raw
}

/** Splits one axis into parts; re-emitted with sizes as an input (opset 13+); backward concatenates the dY parts (zeros where unused). */
export const split: OpDefinition = {
  type: 'Split',
  inferShapes(node, [x], ctx) {
    const axis = axisOf(node, x.length)
    return splitSizes(node, x, axis, (n) => ctx.constant(n)).map((size) => x.map((d, i) => (i === axis ? size : d)))
  },
  emitForward(node, emit, shape) {
    const x = shape(node.inputs[0])
    const axis = axisOf(node, x.length)
    const sizes = node.outputs.map((o) => shape(o)[axis])
    emit.node('Split', [node.inputs[0], emit.int64s('split', sizes)], { axis: { kind: 'int', value: axis } }, node.outputs)
    return {}
  },
  backward({ emit, node, outputGrads, shape }) {
    if (outputGrads.every((g) => g === undefined)) return []
    const x = shape(node.inputs[0])
    const axis = axisOf(node, x.length)
    const parts = outputGrads.map((g, i) => g ?? emit.op('ConstantOfShape', [emit.int64s('shape', [...shape(node.outputs[i])])], {
      value: { kind: 'tensor', value: { dims: [1], data: Float32Array.of(0) } }
    }))
    return [parts.length === 1 ? parts[0] : emit.op('Concat', parts, { axis: { kind: 'int', value: axis } })]
  }
}
