import { ShapeError, type IrNode, type Shape } from '../ir.js'
import type { OpDefinition, ShapeContext } from '../op-definition.js'
import { nodeAxes } from './axes.js'

/** Both ops only change the shape: the forward is re-emitted as a Reshape, the backward reshapes dY back. */
function reshapeForward(node: IrNode, emit: Parameters<NonNullable<OpDefinition['emitForward']>>[1], shape: (name: string) => Shape): Record<string, string> {
  emit.node('Reshape', [node.inputs[0], emit.int64s('shape', [...shape(node.outputs[0])])], {}, node.outputs)
  return {}
}

function squeezeShape(node: IrNode, x: Shape, ctx: ShapeContext): Shape {
  const axes = nodeAxes(node, 1, (n) => ctx.constant(n), x.length)
  if (axes === undefined) return x.filter((d) => d !== 1)
  for (const a of axes) if (x[a] !== 1) throw new ShapeError(`Squeeze node '${node.name}': axis ${a} has size ${x[a]}, not 1`)
  return x.filter((_, i) => !axes.includes(i))
}

/** Removes size-1 axes (attribute or input axes, any opset). */
export const squeeze: OpDefinition = {
  type: 'Squeeze',
  inferShapes: (node, [x], ctx) => [squeezeShape(node, x, ctx)],
  emitForward: reshapeForward,
  backward({ emit, node, outputGrads: [dy], shape }) {
    return dy === undefined ? [] : [emit.op('Reshape', [dy, emit.int64s('shape', [...shape(node.inputs[0])])])]
  }
}

/** Inserts size-1 axes (attribute or input axes, any opset). */
export const unsqueeze: OpDefinition = {
  type: 'Unsqueeze',
  inferShapes(node, [x], ctx) {
    const rankOut = x.length + (node.inputs[1] !== undefined
      ? (ctx.constant(node.inputs[1])?.data.length ?? 0)
      : (node.attrs.axes?.kind === 'ints' ? node.attrs.axes.value.length : 0))
    const axes = nodeAxes(node, 1, (n) => ctx.constant(n), rankOut)
    if (axes === undefined || axes.length === 0) throw new ShapeError(`Unsqueeze node '${node.name}': no axes given`)
    const out: number[] = []
    let k = 0
    for (let i = 0; i < rankOut; i++) out.push(axes.includes(i) ? 1 : x[k++])
    return [out]
  },
  emitForward: reshapeForward,
  backward({ emit, node, outputGrads: [dy], shape }) {
    return dy === undefined ? [] : [emit.op('Reshape', [dy, emit.int64s('shape', [...shape(node.inputs[0])])])]
  }
}
