/**
 * Shape arithmetic folded at build time. Exported models compute reshape targets from the
 * batch at run time (PyTorch's `x.view(x.size(0), -1)` becomes Shape -> Gather -> Unsqueeze ->
 * Concat -> Reshape). A training graph has concrete shapes, so these int64 computations are
 * evaluated here, per batch size, and never reach the autodiff.
 */
import { attrInt, attrInts, ShapeError, type ConstantTensor, type IrNode, type Shape } from './ir.js'

type Values = ReadonlyMap<string, ConstantTensor>
type Evaluator = (node: IrNode, inputs: readonly bigint[][], dims: readonly Shape[]) => ConstantTensor

const vector = (values: readonly bigint[]): ConstantTensor => ({ dims: [values.length], data: BigInt64Array.from(values) })
const scalar = (value: bigint): ConstantTensor => ({ dims: [], data: BigInt64Array.of(value) })

function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis
}

function elementwise(fn: (a: bigint, b: bigint) => bigint): Evaluator {
  return (node, [a, b], [da, db]) => {
    if (a.length !== b.length && a.length !== 1 && b.length !== 1) throw new ShapeError(`${node.op} node '${node.name}': cannot fold operands of ${a.length} and ${b.length} values`)
    const n = Math.max(a.length, b.length)
    const out = Array.from({ length: n }, (_, i) => fn(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]))
    return { dims: da.length >= db.length ? [...da] : [...db], data: BigInt64Array.from(out) }
  }
}

const EVALUATORS: Record<string, Evaluator> = {
  Gather(node, [data, indices], [dataDims, indexDims]) {
    if (dataDims.length !== 1 || attrInt(node, 'axis', 0) !== 0) throw new ShapeError(`Gather node '${node.name}': only gathers from a 1-D shape vector can be folded`)
    const picked = indices.map((i) => data[Number(i < 0n ? i + BigInt(data.length) : i)])
    return indexDims.length === 0 ? scalar(picked[0]) : vector(picked)
  },
  Unsqueeze(node, [data, axes], [dims]) {
    const list = axes ?? attrInts(node, 'axes', []).map(BigInt)
    const rank = dims.length + list.length
    const out: number[] = [...dims]
    for (const a of list.map((x) => normalizeAxis(Number(x), rank)).sort((x, y) => x - y)) out.splice(a, 0, 1)
    return { dims: out, data: BigInt64Array.from(data) }
  },
  Squeeze(node, [data, axes], [dims]) {
    const list = (axes ?? attrInts(node, 'axes', []).map(BigInt)).map((x) => normalizeAxis(Number(x), dims.length))
    return { dims: dims.filter((d, i) => (list.length === 0 ? d !== 1 : !list.includes(i))), data: BigInt64Array.from(data) }
  },
  Concat(node, inputs, dims) {
    if (dims.some((d) => d.length !== 1)) throw new ShapeError(`Concat node '${node.name}': only 1-D shape vectors can be folded`)
    return vector(inputs.flat())
  },
  Slice(node, [data, starts, ends, axes, steps], [dims]) {
    if (dims.length !== 1 || (axes !== undefined && Number(axes[0]) !== 0 && Number(axes[0]) !== -1) || (steps !== undefined && steps[0] !== 1n)) {
      throw new ShapeError(`Slice node '${node.name}': only step-1 slices of a 1-D shape vector can be folded`)
    }
    const clamp = (v: bigint): number => Math.min(Math.max(Number(v < 0n ? v + BigInt(data.length) : v), 0), data.length)
    return vector(data.slice(clamp(starts[0]), clamp(ends[0])))
  },
  Cast(node, [data], [dims]) {
    const to = attrInt(node, 'to', 0)
    // a dimension turned into a float (attention's 1/sqrt(head size)) becomes a float constant
    if (to === 1) return { dims: [...dims], data: Float32Array.from(data, Number) }
    if (to !== 7) throw new ShapeError(`Cast node '${node.name}': only casts of shapes to int64 or float can be folded`)
    return { dims: [...dims], data: BigInt64Array.from(data) }
  },
  Identity: (_node, [data], [dims]) => ({ dims: [...dims], data: BigInt64Array.from(data) }),
  Add: elementwise((a, b) => a + b),
  Sub: elementwise((a, b) => a - b),
  Mul: elementwise((a, b) => a * b),
  Div: elementwise((a, b) => a / b)
}

/** Whether an op only ever appears here as shape arithmetic (so the autodiff need not support it). */
export function isShapeOp(type: string): boolean {
  return type === 'Shape' || (EVALUATORS[type] !== undefined && !['Add', 'Sub', 'Mul', 'Div', 'Identity'].includes(type))
}

/**
 * The node's outputs if it can be evaluated now: Shape of a tensor whose shape is known, or an
 * int64 computation whose inputs are all known values. Undefined when it is real computation.
 */
export function foldShapeNode(node: IrNode, values: Values, shapes: ReadonlyMap<string, Shape>): ConstantTensor | undefined {
  if (node.op === 'Shape') {
    const dims = shapes.get(node.inputs[0])
    if (dims === undefined) return undefined
    const rank = dims.length
    const start = Math.max(0, Math.min(rank, normalizeAxis(attrInt(node, 'start', 0), rank)))
    const end = Math.max(0, Math.min(rank, normalizeAxis(attrInt(node, 'end', rank), rank)))
    return vector(dims.slice(start, end).map(BigInt))
  }
  const evaluate = EVALUATORS[node.op]
  if (evaluate === undefined) return undefined
  const inputs = node.inputs.filter((name) => name !== '').map((name) => values.get(name))
  if (inputs.length === 0 || inputs.some((v) => v === undefined || !(v.data instanceof BigInt64Array))) return undefined
  const known = inputs as ConstantTensor[]
  return evaluate(node, known.map((v) => Array.from(v.data as BigInt64Array)), known.map((v) => v.dims))
}
