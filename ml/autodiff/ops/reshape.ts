import { attrInt, product, ShapeError, type Shape } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

function reshapeBack(emit: Parameters<OpDefinition['backward']>[0]['emit'], dy: string, inputShape: Shape): string {
  return emit.op('Reshape', [dy, emit.int64s('shape', [...inputShape])])
}

export const flatten: OpDefinition = {
  type: 'Flatten',
  inferShapes(node, [x]) {
    const axis = attrInt(node, 'axis', 1)
    const a = axis < 0 ? axis + x.length : axis
    return [[product(x.slice(0, a)), product(x.slice(a))]]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    return dy === undefined ? [] : [reshapeBack(emit, dy, shape(node.inputs[0]))]
  }
}

export const reshape: OpDefinition = {
  type: 'Reshape',
  inferShapes(node, [x], ctx) {
    const target = ctx.constant(node.inputs[1])
    if (target === undefined || !(target.data instanceof BigInt64Array)) {
      throw new ShapeError(`Reshape node '${node.name}': the shape must be a constant int64 tensor`)
    }
    const dims = Array.from(target.data, Number).map((d, i) => (d === 0 ? x[i] : d))
    const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1)
    return [dims.map((d) => (d === -1 ? product(x) / known : d))]
  },
  backward({ emit, node, outputGrads: [dy], shape }) {
    return dy === undefined ? [] : [reshapeBack(emit, dy, shape(node.inputs[0])), undefined]
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
