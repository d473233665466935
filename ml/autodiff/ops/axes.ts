/** Axes given as an attribute (older opsets) or as a constant int64 input (opset 13+). */
import { attrInts, ShapeError, type ConstantTensor, type IrNode } from '../ir.js'

export function nodeAxes(node: IrNode, inputIndex: number, constant: (name: string) => ConstantTensor | undefined, rank: number): number[] | undefined {
  const name = node.inputs[inputIndex]
  let axes: readonly number[] | undefined
  if (name !== undefined && name !== '') {
    const c = constant(name)
    if (c === undefined || !(c.data instanceof BigInt64Array)) throw new ShapeError(`${node.op} node '${node.name}': the axes must be a constant int64 tensor`)
    axes = Array.from(c.data, Number)
  } else if (node.attrs.axes !== undefined) {
    axes = attrInts(node, 'axes', [])
  }
  if (axes === undefined) return undefined
  return axes.map((a) => {
    if (a < -rank || a >= rank) throw new ShapeError(`${node.op} node '${node.name}': axis ${a} is outside rank ${rank}`)
    return a < 0 ? a + rank : a
  })
}
