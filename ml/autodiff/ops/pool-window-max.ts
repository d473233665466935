import { ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/**
 * The max over a pool window's offsets (pool-split-convs.ts makes them its inputs, in the window's
 * row-major order): an ONNX Max of inputs of one shape (no broadcasting), whose gradient goes, per
 * element, to the first input holding the maximum, as MaxPool's Indices name the first maximum
 * of a window: dX_k = R_k * (X_k == Y), R_0 = dY, R_{k+1} = R_k - dX_k, and the last input takes
 * the rest, R_last (every element's dY lands on exactly one input; the subtractions are exact, as
 * R_k - R_k * 1 = 0 and R_k - R_k * 0 = R_k).
 *
 * Internal: only the rewrite makes it. A model's own ONNX Max is not this op: PyTorch splits a
 * tie's gradient between torch.maximum's inputs, so an imported Max stays unsupported.
 */
export const poolWindowMax: OpDefinition = {
  type: 'PoolWindowMax',
  internal: true,
  inferShapes(node, shapes) {
    const [first] = shapes
    if (shapes.length === 0 || shapes.some((s) => s.length !== first.length || s.some((d, i) => d !== first[i]))) {
      throw new ShapeError(`PoolWindowMax node '${node.name}': inputs of one shape only (no broadcasting), got ${shapes.map((s) => `[${s.join(', ')}]`).join(', ')}`)
    }
    return [first]
  },
  emitForward(node, emit) {
    emit.node('Max', node.inputs, {}, node.outputs)
    return {}
  },
  backward({ emit, node, outputGrads: [dy], needsGrad }) {
    if (dy === undefined) return []
    const y = node.outputs[0]
    const grads: Array<string | undefined> = []
    let rest = dy
    node.inputs.forEach((input, k) => {
      if (k === node.inputs.length - 1) {
        grads.push(needsGrad(k) ? rest : undefined)
        return
      }
      const first = emit.op('Mul', [rest, emit.op('Cast', [emit.op('Equal', [input, y])], { to: { kind: 'int', value: 1 } })])
      grads.push(needsGrad(k) ? first : undefined)
      rest = emit.op('Sub', [rest, first])
    })
    return grads
  }
}
