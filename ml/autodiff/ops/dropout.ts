import { attrFloat, ShapeError, type IrNode } from '../ir.js'
import type { OpDefinition, ShapeContext } from '../op-definition.js'

/** The drop probability: the ratio input (opset 12+), else the attribute (older), else 0.5. */
export function dropoutRatio(node: IrNode, constant: ShapeContext['constant']): number {
  const input = node.inputs[1]
  if (input !== undefined && input !== '') {
    const c = constant(input)
    if (c === undefined || !(c.data instanceof Float32Array) || c.data.length !== 1) throw new ShapeError(`Dropout node '${node.name}': the ratio must be a constant float scalar`)
    return c.data[0]
  }
  return attrFloat(node, 'ratio', 0.5)
}

/**
 * Inverted dropout (Srivastava et al. 2014). In the training graph Y = X * mask, where the mask
 * (0 or 1/(1-p) per element) is a graph input the gradient computer fills deterministically from
 * (job seed, step, sample index), so every peer drops the same units for the same sample; dX =
 * dY * mask. Inference and export: identity.
 */
export const dropout: OpDefinition = {
  type: 'Dropout',
  inferShapes(node, [x], ctx) {
    const p = dropoutRatio(node, (n) => ctx.constant(n))
    if (!(p >= 0 && p < 1)) throw new ShapeError(`Dropout node '${node.name}': ratio ${p} must be in [0, 1)`)
    if (node.outputs.length > 1 && node.outputs[1] !== '') throw new ShapeError(`Dropout node '${node.name}': the mask output is not supported`)
    return [x]
  },
  emitForward(node, emit, _shape, ctx): Record<string, string> {
    if (!ctx.training || ctx.dropoutMask === undefined || dropoutRatio(node, ctx.constant) === 0) {
      emit.node('Identity', [node.inputs[0]], {}, [node.outputs[0]])
      return {}
    }
    const mask = ctx.dropoutMask(node)
    emit.node('Mul', [node.inputs[0], mask], {}, [node.outputs[0]])
    return { mask }
  },
  backward({ emit, outputGrads: [dy], saved }) {
    if (dy === undefined) return []
    return [saved.mask === undefined ? dy : emit.op('Mul', [dy, saved.mask])]
  }
}
