import { ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/**
 * Elementwise Max of inputs of one shape (no broadcasting). Its gradient goes, per element, to
 * the first input holding the maximum, as MaxPool's (its Indices name the first maximum of a
 * window, in the window's row-major order; pool-split-convs.ts makes a pool's window offsets
 * these inputs, in that order): dX_k = R_k * (X_k == Y), R_0 = dY, R_{k+1} = R_k - dX_k, and
 * the last input takes the rest, R_last (every element's dY lands on exactly one input; the
 * subtractions are exact, as R_k - R_k * 1 = 0 and R_k - R_k * 0 = R_k).
 */
export const max: OpDefinition = {
  type: 'Max',
  inferShapes(node, shapes) {
    const [first] = shapes
    if (shapes.length === 0 || shapes.some((s) => s.length !== first.length || s.some((d, i) => d !== first[i]))) {
      throw new ShapeError(`Max node '${node.name}': inputs of one shape only (no broadcasting), got ${shapes.map((s) => `[${s.join(', ')}]`).join(', ')}`)
    }
    return [first]
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
