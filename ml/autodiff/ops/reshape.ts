import { attrInt, product, ShapeError, type IrNode, type Shape } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/** dY (the forward's output shape) back to the forward's input shape. */
function reshapeBack(emit: Parameters<OpDefinition['backward']>[0]['emit'], dy: string, inputShape: Shape, outputShape: Shape): string {
  return emit.reshape(dy, outputShape, inputShape)
}

/**
 * ONNX Reshape's target rules: 0 copies the input's dim at that index (unless allowzero = 1,
 * where it is a real 0), at most one -1 is inferred and must divide evenly, and the element
 * counts must match. Errors name the node and both shapes.
 */
export function reshapeTarget(node: IrNode, x: Shape, target: readonly number[]): number[] {
  const allowZero = attrInt(node, 'allowzero', 0) === 1
  const where = `Reshape node '${node.name}' (input [${x.join(', ')}], target [${target.join(', ')}])`
  if (target.filter((d) => d === -1).length > 1) throw new ShapeError(`${where}: at most one dimension may be -1`)
  if (target.some((d) => d < -1)) throw new ShapeError(`${where}: dimensions must be >= -1`)
  const dims = target.map((d, i) => {
    if (d !== 0 || allowZero) return d
    if (i >= x.length) throw new ShapeError(`${where}: 0 at index ${i} copies an input dimension the input does not have`)
    return x[i]
  })
  const total = product(x)
  const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1)
  if (dims.includes(-1)) {
    if (known === 0 || total % known !== 0) throw new ShapeError(`${where}: ${total} elements cannot be split into the known dimensions (${known} per -1 step)`)
    return dims.map((d) => (d === -1 ? total / known : d))
  }
  if (known !== total) throw new ShapeError(`${where}: the target holds ${known} elements, the input ${total}`)
  return dims
}

export const flatten: OpDefinition = {
  type: 'Flatten',
  inferShapes(node, [x]) {
    const axis = attrInt(node, 'axis', 1)
    const a = axis < 0 ? axis + x.length : axis
    return [[product(x.slice(0, a)), product(x.slice(a))]]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    return dy === undefined ? [] : [reshapeBack(emit, dy, shape(node.inputs[0]), shape(node.outputs[0]))]
  }
}

export const reshape: OpDefinition = {
  type: 'Reshape',
  inferShapes(node, [x], ctx) {
    const target = ctx.constant(node.inputs[1])
    if (target === undefined || !(target.data instanceof BigInt64Array)) {
      throw new ShapeError(`Reshape node '${node.name}': the shape must be a constant int64 tensor`)
    }
    return [reshapeTarget(node, x, Array.from(target.data, Number))]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    return dy === undefined ? [] : [reshapeBack(emit, dy, shape(node.inputs[0]), shape(node.outputs[0])), undefined]
  }
}

export const identity: OpDefinition = {
  type: 'Identity',
  inferShapes(_node, [x]) {
    return [x]
  },
  backward({ outputGrads: [dy] }) {
    return [dy]
  }
}
