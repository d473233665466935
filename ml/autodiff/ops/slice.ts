import { ShapeError, type IrNode, type Shape } from '../ir.js'
import type { OpDefinition, ShapeContext } from '../op-definition.js'

interface SliceRange { readonly axis: number, readonly start: number, readonly end: number }

function ints64(node: IrNode, index: number, constant: ShapeContext['constant']): number[] | undefined {
  const name = node.inputs[index]
  if (name === undefined || name === '') return undefined
  const c = constant(name)
  if (c === undefined || !(c.data instanceof BigInt64Array)) throw new ShapeError(`Slice node '${node.name}': input ${index} must be a constant int64 tensor`)
  return Array.from(c.data, Number)
}

/** The clamped [start, end) per sliced axis (opset 10+ inputs; step 1 only). */
function sliceRanges(node: IrNode, x: Shape, constant: ShapeContext['constant']): SliceRange[] {
  const starts = ints64(node, 1, constant)
  const ends = ints64(node, 2, constant)
  if (starts === undefined || ends === undefined) throw new ShapeError(`Slice node '${node.name}': starts and ends inputs are required (opset 10+)`)
  const axes = ints64(node, 3, constant) ?? starts.map((_, i) => i)
  const steps = ints64(node, 4, constant) ?? starts.map(() => 1)
  if (steps.some((s) => s !== 1)) throw new ShapeError(`Slice node '${node.name}': only step 1 is supported, got steps [${steps.join(', ')}]`)
  return axes.map((raw, i) => {
    const axis = raw < 0 ? raw + x.length : raw
    if (axis < 0 || axis >= x.length) throw new ShapeError(`Slice node '${node.name}': axis ${raw} is outside rank ${x.length}`)
    const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + x[axis] : v, 0), x[axis])
    const start = clamp(starts[i])
    return { axis, start, end: Math.max(start, clamp(ends[i])) }
  })
}

/** Contiguous slices (step 1); backward pads dY with zeros back to the input's shape. */
export const slice: OpDefinition = {
  type: 'Slice',
  inferShapes(node, [x], ctx) {
    const out = [...x]
    for (const r of sliceRanges(node, x, (n) => ctx.constant(n))) out[r.axis] = r.end - r.start
    return [out]
  },
  backward({ emit, node, outputGrads: [dy], shape, constant }) {
    if (dy === undefined) return []
    const x = shape(node.inputs[0])
    const pads = new Array<number>(2 * x.length).fill(0)
    for (const r of sliceRanges(node, x, constant)) {
      pads[r.axis] = r.start
      pads[r.axis + x.length] = x[r.axis] - r.end
    }
    return [emit.op('Pad', [dy, emit.int64s('pads', pads)])]
  }
}
