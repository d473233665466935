import { attrString, ShapeError } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

function padAmounts(node: Parameters<OpDefinition['inferShapes']>[0], rank: number, constant: (name: string) => { data: Float32Array | BigInt64Array } | undefined): number[] {
  if (attrString(node, 'mode', 'constant') !== 'constant') throw new ShapeError(`Pad node '${node.name}': only mode 'constant' is supported`)
  if (node.inputs[3] !== undefined && node.inputs[3] !== '') throw new ShapeError(`Pad node '${node.name}': the axes input is not supported`)
  const pads = constant(node.inputs[1])
  if (pads === undefined || !(pads.data instanceof BigInt64Array) || pads.data.length !== 2 * rank) {
    throw new ShapeError(`Pad node '${node.name}': pads must be a constant int64 tensor of ${2 * rank} values`)
  }
  const values = Array.from(pads.data, Number)
  if (values.some((p) => p < 0)) throw new ShapeError(`Pad node '${node.name}': negative pads (cropping) are not supported`)
  return values
}

/** Constant padding (PyTorch exports one before avg_pool2d); backward slices the padding off again. */
export const pad: OpDefinition = {
  type: 'Pad',
  inferShapes(node, [x], ctx) {
    const p = padAmounts(node, x.length, (name) => ctx.constant(name))
    return [x.map((d, i) => d + p[i] + p[i + x.length])]
  },
  backward({ emit, node, outputGrads: [dy], shape, constant }) {
    if (dy === undefined) return []
    const xs = shape(node.inputs[0])
    const p = padAmounts(node, xs.length, constant)
    if (p.every((v) => v === 0)) return [dy]
    const starts = xs.map((_, i) => p[i])
    return [emit.op('Slice', [dy, emit.int64s('starts', starts), emit.int64s('ends', xs.map((d, i) => starts[i] + d)), emit.int64s('axes', xs.map((_, i) => i))])]
  }
}
