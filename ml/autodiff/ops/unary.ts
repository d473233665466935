import type { GraphEmitter } from '../../onnx/graph-emitter.js'
import type { IrNode } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

/**
 * An elementwise op whose output has its input's shape: only the local derivative differs.
 * `local` emits dY/dX (from the node's input x and output y); dX = dY * local.
 */
export function unaryOp(type: string, local: (emit: GraphEmitter, x: string, y: string, node: IrNode) => string): OpDefinition {
  return {
    type,
    inferShapes(_node, [x]) {
      return [x]
    },
    backward({ emit, node, outputGrads: [dy] }) {
      if (dy === undefined) return []
      return [emit.op('Mul', [dy, local(emit, node.inputs[0], node.outputs[0], node)])]
    }
  }
}
